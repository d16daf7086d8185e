// Package delivery is the machinery that takes stored events to their
// destinations, at least once: one lane per destination (its bounded queue,
// workers and sweeper, which claims due and orphaned deliveries under
// leases), the batched result writer, the adopter of rows of the previous
// version, the pruner, and the queries behind the events, replay and
// destinations commands. Delivery state lives in Postgres, one row per
// (event, destination); a result applies only while its writer still holds
// the row's lease. A destination with a rate or an in-flight bound has its
// workers wait for a slot (pacer, on package pace) before each call, within
// the delivery's lease and without counting an attempt.
package delivery
