// Package bench is oncehook's load and correctness harness: it generates
// signed Stripe events, sends them to receivers in the scenarios of
// cmd/bench (unique, fanout, storm, replay, mixed, spread, hostile, and the
// bare-server floor), measures throughput and latency, and checks end to
// end, with a counting sink, that every event answered 200 reached the
// sink exactly once (fanout: each of its destinations, paths of the sink)
// and no bad request reached it at all.
//
// Fill puts millions of delivered events into a receiver's ledger with
// SQL, so that runs can measure the receiver on a ledger of realistic
// size, with its pruner deleting (RunConfig.Ledger records the ledger's
// inserts and deletes over a run).
//
// Event ids are evt_bench_<run>_<n>: the sink keeps one byte per event of
// a run, indexed by n, so memory stays small and bounded.
package bench
