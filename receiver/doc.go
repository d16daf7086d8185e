// Package receiver holds the fasthttp handlers of oncehook: limits, Stripe
// signature verification, and the HTTP contract. A verified body goes
// through dedup.Admit.
package receiver
