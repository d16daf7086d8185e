// Package delivery is the machinery that takes stored events to a sink, at
// least once: the bounded queue and its workers (Dispatcher), the sweeper
// that claims due and orphaned rows under leases, the batched result
// writer, the pruner, and the queries behind the events and replay
// commands. Delivery state lives in Postgres; a result applies only while
// its writer still holds the row's lease.
package delivery
