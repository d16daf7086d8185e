package delivery

// Statuses of a delivery; StatusUnrouted is an event with no delivery.
// The operator statements (listing, show, replay) are in store, and the
// operator API over them in admin.
const (
	StatusPending   = "pending"
	StatusDelivered = "delivered"
	StatusDead      = "dead"
	StatusUnrouted  = "unrouted"
)
