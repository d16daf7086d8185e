package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/oncehook/oncehook/admin"
	"github.com/oncehook/oncehook/internal/safetext"
	"github.com/oncehook/oncehook/route"
	"github.com/oncehook/oncehook/store"
	"github.com/oncehook/oncehook/stripeapi"
)

// webhookPath is where the receiver takes Stripe's webhooks.
const webhookPath = "/webhooks/stripe"

// maxEndpointURL bounds --url.
const maxEndpointURL = 2048

func newStripeCmd() *cobra.Command {
	c := groupCmd(&cobra.Command{
		Use:   "stripe",
		Short: "Set Stripe up to send its webhooks to oncehook",
	})
	endpoint := groupCmd(&cobra.Command{
		Use:   "endpoint",
		Short: "Stripe webhook endpoints",
	})
	endpoint.AddCommand(newStripeEndpointCreateCmd())
	c.AddCommand(endpoint)
	return c
}

// endpointOptions are the flags of stripe endpoint create.
type endpointOptions struct {
	url, description       string
	dryRun, connect, force bool
}

func newStripeEndpointCreateCmd() *cobra.Command {
	var o endpointOptions
	c := &cobra.Command{
		Use:   "create --url https://HOST/webhooks/stripe",
		Short: "Create the webhook endpoint that sends Stripe's events to oncehook",
		Long: `Create a webhook endpoint through Stripe's API (POST /v1/webhook_endpoints)
and print its signing secret, once, with the next step: set it as
STRIPE_WEBHOOK_SECRET (appended, comma-separated, with several endpoints).

The endpoint sends the events the destinations take: the union of their
types (invoice.* becomes the invoice event types stripe-go knows), or every
event ("*") when one destination takes every type. Only the destinations
that take events of the key's mode count: a test key creates a test-mode
endpoint. The destinations are those the running instances recorded in
Postgres (DATABASE_URL), else this environment's.

Events are rendered in STRIPE_API_VERSION (stripe-go's pinned version when
unset), which the endpoint is pinned to.

Needs STRIPE_API_KEY: a secret key, or a restricted key with write access to
Webhook Endpoints. --dry-run prints the request instead, and needs no key.`,
		Example: `  oncehook stripe endpoint create --url https://hooks.example.com/webhooks/stripe --dry-run
  STRIPE_API_KEY=sk_test_... oncehook stripe endpoint create --url https://hooks.example.com/webhooks/stripe`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return stripeEndpointCreate(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := c.Flags()
	f.StringVar(&o.url, "url", "", "the receiver's public webhook URL, https://HOST/webhooks/stripe (required)")
	f.BoolVar(&o.dryRun, "dry-run", false, "print the request (method, URL, form body) instead of sending it; needs no key")
	f.StringVar(&o.description, "description", "", `shown in the Dashboard (default "oncehook: " and the destinations)`)
	f.BoolVar(&o.connect, "connect", false, "send the events of connected accounts (a Connect endpoint) instead of this account's")
	f.BoolVar(&o.force, "force", false, "use this environment's destinations even where the running instances serve others")
	_ = c.MarkFlagRequired("url")
	return c
}

func stripeEndpointCreate(ctx context.Context, o endpointOptions, out io.Writer) error {
	warning, err := checkEndpointURL(o.url)
	if err != nil {
		return err
	}
	if warning != "" {
		fmt.Fprintln(stderr, "oncehook: warning:", warning)
	}
	e := env{lookup: os.LookupEnv}
	s := e.stripeAPI()
	if err := errors.Join(e.errs...); err != nil {
		return err
	}
	if s.APIKey == "" && !o.dryRun {
		return errors.New("STRIPE_API_KEY is not set: creating a webhook endpoint needs a secret key, or a restricted key with write access to Webhook Endpoints (--dry-run prints the request without one)")
	}
	set, from, err := endpointDestinations(ctx, o.force)
	if err != nil {
		return err
	}
	mode := keyMode(s.APIKey)
	events, served, unknown, unmatched := enabledEvents(set, mode)
	for _, p := range unmatched {
		fmt.Fprintf(stderr, "oncehook: warning: the pattern %q matches no event type stripe-go %s knows: it adds none\n", p, stripeapi.DefaultVersion)
	}
	for _, t := range unknown {
		fmt.Fprintf(stderr, "oncehook: warning: %q is not an event type stripe-go %s knows: Stripe may refuse it\n", t, stripeapi.DefaultVersion)
	}
	if len(events) == 0 {
		if len(served) == 0 {
			return fmt.Errorf("no destination takes %s-mode events (the key's mode): %s", mode, describeFilters(set))
		}
		return fmt.Errorf("the destinations' types match no event type: %s", describeFilters(set))
	}
	p := stripeapi.EndpointParams{URL: o.url, EnabledEvents: events, APIVersion: s.APIVersion, Description: o.description, Connect: o.connect}
	if p.Description == "" {
		p.Description = "oncehook: " + strings.Join(served, ",")
	}
	modeText := "a " + string(mode) + "-mode"
	if mode == route.Both {
		modeText = "a" // no key: the mode is the key's
	}
	fmt.Fprintf(out, "%s webhook endpoint for %s\n", modeText, o.url)
	fmt.Fprintf(out, "  api_version     %s\n", s.APIVersion)
	fmt.Fprintf(out, "  enabled_events  %s\n", eventsSummary(events))
	fmt.Fprintf(out, "  destinations    %s, %s\n", describeFilters(pick(set, served)), from)
	for _, d := range set {
		if !slices.Contains(served, d.Name) {
			fmt.Fprintf(out, "                  %s left out: it takes %s-mode events only\n", d.Name, d.Filter.Livemode)
		}
	}

	if o.dryRun {
		method, u, body, err := stripeapi.WebhookEndpointRequest(s.APIBase, p)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "\ndry run: nothing is sent. The request:\n\n%s %s\nStripe-Version: %s\nContent-Type: application/x-www-form-urlencoded\n\n%s\n",
			method, u, s.APIVersion, body)
		return nil
	}
	client, err := stripeClient(s)
	if err != nil {
		return err
	}
	ep, err := client.CreateWebhookEndpoint(ctx, p)
	if err != nil {
		return err
	}
	live := "test mode"
	if ep.Livemode {
		live = "live mode"
	}
	// Stripe's answer is text from outside: escaped for the terminal.
	fmt.Fprintf(out, "\ncreated webhook endpoint %s (%s, api_version %s, %s)\n", term(ep.ID), live, term(ep.APIVersion), term(eventsSummary(ep.EnabledEvents)))
	if ep.Secret == "" {
		return fmt.Errorf("Stripe's answer has no signing secret: reveal it in the Dashboard, under Developers > Webhooks > %s", term(ep.ID))
	}
	fmt.Fprintf(out, `
its signing secret, printed this once (the Dashboard can reveal it again):

  %s

next: give it to every oncehook instance, and restart them:

  STRIPE_WEBHOOK_SECRET=%s

with several endpoints (or while moving from another one), append it to the
secrets there, comma-separated: STRIPE_WEBHOOK_SECRET=whsec_...,%s
`, term(ep.Secret), term(ep.Secret), term(ep.Secret))
	return nil
}

// endpointDestinations is the destination set the endpoint is for: the
// running instances' record (see resolveDestinations), else this
// environment's, and where it comes from.
func endpointDestinations(ctx context.Context, force bool) ([]route.Destination, string, error) {
	dests, err := configuredDestinations()
	if err != nil {
		return nil, "", err
	}
	if os.Getenv("DATABASE_URL") == "" {
		fmt.Fprintln(stderr, "oncehook: DATABASE_URL is not set: using this environment's destinations, not those the running instances recorded")
		return routes(dests), "as this environment configures them", nil
	}
	pool, err := adminPool(ctx)
	if err != nil {
		return nil, "", err
	}
	defer pool.Close()
	res, err := resolveDestinations(ctx, admin.New(store.New(pool)), dests, force)
	if err != nil {
		return nil, "", err
	}
	if res.Source == admin.FromRecord {
		return res.Destinations, "as the running instances recorded them", nil
	}
	return res.Destinations, "as this environment configures them", nil
}

// checkEndpointURL checks --url: an absolute https URL, or http for
// localhost, without credentials or fragment. A path other than
// /webhooks/stripe is a warning: a proxy may rewrite it.
func checkEndpointURL(raw string) (warning string, err error) {
	shown := safetext.Clean(raw, 200)
	if raw == "" {
		return "", errors.New("--url is required: the receiver's public webhook URL, such as https://hooks.example.com/webhooks/stripe")
	}
	if len(raw) > maxEndpointURL {
		return "", fmt.Errorf("--url is longer than %d bytes", maxEndpointURL)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return "", fmt.Errorf("--url %q is not an absolute URL such as https://hooks.example.com/webhooks/stripe", shown)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && isLocalhost(u.Hostname()):
	case u.Scheme == "http":
		return "", fmt.Errorf("--url %q: Stripe sends webhooks over https; http is only for localhost", shown)
	default:
		return "", fmt.Errorf("--url %q: want https://HOST%s", shown, webhookPath)
	}
	if u.User != nil {
		return "", fmt.Errorf("--url carries a user name or password: Stripe authenticates its requests with the signature instead")
	}
	if u.Fragment != "" || strings.HasSuffix(raw, "#") {
		return "", fmt.Errorf("--url %q has a fragment (#...), which is never sent", shown)
	}
	if u.Path != webhookPath {
		warning = fmt.Sprintf("--url's path is %q, not %s, where oncehook takes webhooks: make sure a proxy in front of it maps one to the other", safetext.Clean(u.Path, 200), webhookPath)
	}
	return warning, nil
}

func isLocalhost(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// keyMode is the mode of the endpoints key creates; Both when there is no
// key (a dry run).
func keyMode(key string) route.Livemode {
	switch {
	case strings.HasPrefix(key, "sk_live_"), strings.HasPrefix(key, "rk_live_"):
		return route.Live
	case strings.HasPrefix(key, "sk_test_"), strings.HasPrefix(key, "rk_test_"):
		return route.Test
	}
	return route.Both
}

// eventsSummary is "*" (every event) or the count of types.
func eventsSummary(events []string) string {
	if len(events) == 1 && events[0] == "*" {
		return `"*" (every event)`
	}
	return count(len(events), "event type", "")
}

// describeFilters writes each destination with its types and livemode,
// as DESTINATION_<NAME>_TYPES and _LIVEMODE take them.
func describeFilters(set []route.Destination) string {
	if len(set) == 0 {
		return "no destination"
	}
	parts := make([]string, len(set))
	for i, d := range set {
		types := "*"
		if len(d.Filter.Types) > 0 {
			types = strings.Join(d.Filter.Types, ",")
		}
		if m := d.Filter.Livemode; m != "" && m != route.Both {
			types += ", " + string(m) + " only"
		}
		parts[i] = d.Name + " (" + types + ")"
	}
	return strings.Join(parts, ", ")
}

// pick are the destinations of set named in names.
func pick(set []route.Destination, names []string) []route.Destination {
	var out []route.Destination
	for _, d := range set {
		for _, n := range names {
			if d.Name == n {
				out = append(out, d)
				break
			}
		}
	}
	return out
}
