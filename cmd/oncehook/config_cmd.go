package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/oncehook/oncehook/internal/redact"
)

func newConfigCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "config",
		Short: "Check the environment and print the effective configuration, secrets redacted",
		Long: `Check the environment as serve does, without connecting to anything, and
print the effective configuration: every variable with its value or its
default. Secrets are redacted: webhook and signing secrets, STRIPE_API_KEY,
ADMIN_TOKEN, and the passwords and query values of DATABASE_URL, REDIS_URL
and sink URLs.

A bad configuration exits 1, each error naming its variable and what it
accepts, so that a deploy pipeline can run it before starting instances.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := loadConfig(os.LookupEnv)
			if err == nil {
				err = strayDestinationVars(os.Environ(), c.Destinations)
			}
			if err != nil {
				return err
			}
			return printConfig(cmd.OutOrStdout(), c, os.Getenv)
		},
	}
}

// printConfig writes c as VARIABLE=value lines, secrets redacted; getenv
// gives the lists that are printed as they were set.
func printConfig(out io.Writer, c config, getenv func(string) string) error {
	secret := func(set bool) string {
		if set {
			return redact.Mask
		}
		return ""
	}
	webhookSecrets := make([]string, len(c.Secrets))
	for i := range c.Secrets {
		webhookSecrets[i] = "whsec_" + redact.Mask
	}
	apiKey := secret(c.Stripe.APIKey != "")
	if k := c.Stripe.APIKey; len(k) > 8 {
		// The prefix (sk_live_, rk_test_...) says which kind of key it is.
		apiKey = k[:strings.LastIndexByte(k[:8], '_')+1] + redact.Mask
	}
	dur := func(d time.Duration) string { return d.String() }
	itoa := strconv.Itoa
	vars := [][2]string{
		{"LISTEN_ADDR", c.ListenAddr},
		{"ADMIN_ADDR", c.AdminAddr},
		{"ADMIN_TOKEN", secret(c.AdminToken != "")},
		{"STRIPE_WEBHOOK_SECRET", strings.Join(webhookSecrets, ",")},
		{"SIGNATURE_TOLERANCE", dur(c.Tolerance)},
		{"DATABASE_URL", redact.URL(c.DatabaseURL)},
		{"REDIS_URL", redactedURL(c.RedisURL)},
		{"REDIS_TIMEOUT", dur(c.RedisTimeout)},
		{"REDIS_KEY_PREFIX", c.RedisKeyPrefix},
		{"DEDUP_TTL", dur(c.DedupTTL)},
		{"DEDUP_RECENT_IDS", itoa(c.DedupRecentIDs)},
		{"MAX_BODY_BYTES", itoa(c.MaxBodyBytes)},
		{"WORKERS", itoa(c.Workers)},
		{"QUEUE_SIZE", itoa(c.QueueSize)},
		{"QUEUE_MAX_BYTES", itoa(c.QueueMaxBytes)},
		{"DELIVERY_MAX_ATTEMPTS", itoa(c.DeliveryMaxAttempts)},
		{"DELIVERY_TIMEOUT", dur(c.DeliveryTimeout)},
		{"DELIVERY_LEASE", dur(c.DeliveryLease)},
		{"RETENTION", dur(c.Retention)},
		{"PRUNE_DUTY", itoa(c.PruneDuty)},
		{"SHUTDOWN_TIMEOUT", dur(c.ShutdownTimeout)},
		{"MAX_CONCURRENCY", itoa(c.MaxConcurrency)},
		{"MAX_CONNECTIONS", itoa(c.MaxConnections)},
		{"MAX_INFLIGHT_BODY_BYTES", itoa(c.MaxInflightBytes)},
		{"MAX_CONNS_PER_IP", itoa(c.MaxConnsPerIP)},
		{"READ_TIMEOUT", dur(c.ReadTimeout)},
		{"IDLE_TIMEOUT", dur(c.IdleTimeout)},
		{"STRIPE_IP_ALLOWLIST", getenv("STRIPE_IP_ALLOWLIST")},
		{"TRUSTED_PROXIES", getenv("TRUSTED_PROXIES")},
		{"TLS_CERT_FILE", c.TLSCertFile},
		{"TLS_KEY_FILE", c.TLSKeyFile},
		{"LOG_LEVEL", strings.ToLower(c.LogLevel.String())},
		{"LOG_FORMAT", c.LogFormat},
		{"STRIPE_API_KEY", apiKey},
		{"STRIPE_API_BASE", redact.URL(c.Stripe.APIBase)},
		{"STRIPE_API_VERSION", c.Stripe.APIVersion},
		{"RECONCILE_INTERVAL", dur(c.Stripe.ReconcileInterval)},
		{"RECONCILE_OVERLAP", dur(c.Stripe.ReconcileOverlap)},
		{"RECONCILE_LOOKBACK", dur(c.Stripe.ReconcileLookback)},
		{"RECONCILE_ALL", strconv.FormatBool(c.Stripe.ReconcileAll)},
		{"RECONCILE_TYPES", strings.Join(c.Stripe.ReconcileTypes, ",")},
		{"THIN_EVENTS", c.Stripe.ThinEvents},
	}
	if len(c.Destinations) == 1 && c.Destinations[0].URLVar == "SINK_URL" {
		d := c.Destinations[0]
		vars = append(vars, [2]string{"SINK_URL", d.Target.String()}, [2]string{"SINK_SIGNING_SECRET", secret(d.Signer != nil)})
	} else {
		vars = append(vars, [2]string{"DESTINATIONS", strings.Join(destinationNames(c.Destinations), ",")})
		for _, d := range c.Destinations {
			v := func(field string) string { return destinationVar(d.Name, field) }
			types := strings.Join(d.Filter.Types, ",")
			if types == "" {
				types = "*"
			}
			vars = append(vars,
				[2]string{v("URL"), d.Target.String()},
				[2]string{v("TYPES"), types},
				[2]string{v("LIVEMODE"), string(d.Filter.Livemode)},
				[2]string{v("SIGNING_SECRET"), secret(d.Signer != nil)},
				[2]string{v("WORKERS"), itoa(d.Workers)},
				[2]string{v("TIMEOUT"), dur(d.Timeout)},
				[2]string{v("MAX_ATTEMPTS"), itoa(d.MaxAttempts)},
				[2]string{v("ORDER_KEY"), d.OrderKey.String()},
				[2]string{v("RATE"), d.Rate.String()},
				[2]string{v("MAX_IN_FLIGHT"), inFlight(d.MaxInFlight)})
		}
	}
	fmt.Fprintln(out, "# the effective configuration: defaults filled in, secrets redacted ("+redact.Mask+")")
	for _, kv := range vars {
		if _, err := fmt.Fprintf(out, "%s=%s\n", kv[0], kv[1]); err != nil {
			return err
		}
	}
	return nil
}

// redactedURL is redact.URL, or "" for an unset URL.
func redactedURL(u string) string {
	if u == "" {
		return ""
	}
	return redact.URL(u)
}
