// Package receiver holds the fasthttp handlers of oncehook: Stripe signature
// verification, event parsing without a full decode, and the HTTP contract.
package receiver
