package store

// Status is the state of one delivery (an event at one destination):
// pending -> delivered | dead; a replay moves dead (or delivered) back to
// pending. The transitions are in deliveries.go.
type Status string

// The statuses a delivery row holds, and StatusUnrouted, which listings
// give an event that matched no destination (it has no delivery row).
const (
	StatusPending   Status = "pending"
	StatusDelivered Status = "delivered"
	StatusDead      Status = "dead"
	StatusUnrouted  Status = "unrouted"
)

// ledgerRouted is the status of every ledger row this version writes: its
// delivery state is in stripe_webhook_deliveries. Rows of an older version
// hold a delivery status of their own until they are adopted (adopt.go).
const ledgerRouted = "routed"

// Valid reports whether s is one of the statuses above.
func (s Status) Valid() bool {
	switch s {
	case StatusPending, StatusDelivered, StatusDead, StatusUnrouted:
		return true
	}
	return false
}
