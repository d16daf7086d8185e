package service

import (
	"log/slog"
	"time"

	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/pace"
	"github.com/oncehook/oncehook/receiver"
	"github.com/oncehook/oncehook/route"
	"github.com/oncehook/oncehook/sink"
)

// Config is everything a receiver instance is built from. cmd/oncehook
// reads it from the environment (and documents each variable with its
// default); a zero field takes the default of the library Config it goes
// to.
type Config struct {
	ListenAddr          string
	AdminAddr           string // empty: no admin server (metrics, pprof, console)
	AdminToken          string // empty: the console is off
	Secrets             []string
	Tolerance           time.Duration
	DatabaseURL         string
	RedisURL            string
	RedisTimeout        time.Duration
	RedisKeyPrefix      string // empty: bound to the database's namespace
	DedupTTL            time.Duration
	DedupRecentIDs      int
	MaxBodyBytes        int
	Destinations        []Destination // SINK_URL alone is one, named default
	Workers             int
	QueueSize           int
	QueueMaxBytes       int
	DeliveryMaxAttempts int
	DeliveryTimeout     time.Duration
	DeliveryLease       time.Duration
	Retention           time.Duration
	PruneDuty           int // percent
	ShutdownTimeout     time.Duration
	MaxConcurrency      int
	MaxConnections      int
	MaxInflightBytes    int
	MaxConnsPerIP       int
	ReadTimeout         time.Duration
	IdleTimeout         time.Duration
	Allowlist           receiver.Prefixes
	TrustedProxies      receiver.Prefixes
	TLSCertFile         string
	TLSKeyFile          string
	LogLevel            slog.Level
	LogFormat           string
	Stripe              StripeConfig
}

// StripeConfig is the Stripe API's settings: the reconciler and thin events.
type StripeConfig struct {
	APIKey            string // empty: no reconciler, THIN_EVENTS=fetch refused
	APIBase           string
	APIVersion        string
	ReconcileInterval time.Duration // 0: off
	ReconcileOverlap  time.Duration
	ReconcileLookback time.Duration
	ReconcileAll      bool
	ReconcileTypes    []string
	ThinEvents        string // forward or fetch
}

// Destination is one destination as configured.
type Destination struct {
	Name        string
	URLVar      string // the variable that set its URL, for messages
	Target      sink.Target
	Filter      route.Filter
	Signer      *sink.StandardWebhooksSigner // nil: unsigned
	Workers     int
	Timeout     time.Duration
	MaxAttempts int
	OrderKey    event.KeyPath // zero: unordered
	Rate        pace.Rate     // zero: no limit
	MaxInFlight int           // 0: no bound but Workers
}
