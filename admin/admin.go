package admin

import (
	"github.com/oncehook/oncehook/store"
)

// Admin runs operators' requests on a Store. It is safe for concurrent
// use.
type Admin struct {
	store *store.Store
}

// New returns an Admin on s.
func New(s *store.Store) *Admin { return &Admin{store: s} }

// Store is the Store a runs on.
func (a *Admin) Store() *store.Store { return a.store }
