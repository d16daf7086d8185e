package receiver

import "github.com/oncehook/oncehook/internal/eventtest"

// The bodies the benchmarks and FuzzHandler send, shared with the
// parser's benchmarks in event/.
const snapshotEventBody = eventtest.SnapshotBody

var largeInvoiceEvent = eventtest.LargeInvoice
