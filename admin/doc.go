// Package admin is oncehook's one door for operators: the command line
// (oncehook events, replay, destinations, reconcile) and the web console
// call these functions and nothing else, so that both list, show and
// replay alike.
//
//   - List: one listing, with one parameters type (ListParams: status,
//     destination, type patterns, livemode, time range) and a keyset
//     cursor; ListDeliveries is the same walk, one row per delivery.
//   - Show: one event, its deliveries, payload and history.
//   - Replay: one batched replay, by event ids, by filter (dead letters,
//     or delivered deliveries to send again), or as a backfill of a
//     destination. Every batch is its own short transaction.
//   - Destinations: the destination set of record, which the running
//     instances write (Registration) and the commands and the console
//     read (Record, Resolve), with each destination's deliveries.
//
// Every statement is in package store.
package admin
