package stripeapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/form"

	"github.com/oncehook/oncehook/internal/safetext"
)

// webhookEndpointsPath is where webhook endpoints are created.
const webhookEndpointsPath = "/v1/webhook_endpoints"

// maxSecretBytes bounds a signing secret read from Stripe's answer.
const maxSecretBytes = 255

// EndpointParams is a webhook endpoint to create.
type EndpointParams struct {
	// URL is where Stripe sends the events. Required.
	URL string
	// EnabledEvents are the event types sent, or just "*" for all.
	// Required.
	EnabledEvents []string
	// APIVersion renders the endpoint's events. Required: without it
	// Stripe uses the account's default version, which can change.
	APIVersion string
	// Description is shown in the Dashboard. Optional.
	Description string
	// Connect makes it an endpoint for the events of connected accounts.
	Connect bool
}

// Endpoint is a created webhook endpoint, its fields made safe to print.
type Endpoint struct {
	ID            string
	URL           string
	APIVersion    string
	EnabledEvents []string
	Livemode      bool
	// Secret is the signing secret (whsec_...), which Stripe returns only
	// at creation; empty when the answer had none.
	Secret string
}

func (p EndpointParams) stripeParams() (*stripe.WebhookEndpointCreateParams, error) {
	switch {
	case p.URL == "":
		return nil, errors.New("creating a webhook endpoint: no URL")
	case len(p.EnabledEvents) == 0:
		return nil, errors.New("creating a webhook endpoint: no enabled events")
	case p.APIVersion == "":
		return nil, errors.New("creating a webhook endpoint: no API version")
	}
	sp := &stripe.WebhookEndpointCreateParams{
		URL:           stripe.String(p.URL),
		EnabledEvents: stripe.StringSlice(p.EnabledEvents),
		APIVersion:    stripe.String(p.APIVersion),
	}
	if p.Description != "" {
		sp.Description = stripe.String(p.Description)
	}
	if p.Connect {
		sp.Connect = stripe.Bool(true)
	}
	return sp, nil
}

// WebhookEndpointRequest is the request CreateWebhookEndpoint sends to
// base (DefaultBase when empty): method, URL and form body, as stripe-go
// encodes it. It sends nothing.
func WebhookEndpointRequest(base string, p EndpointParams) (method, url, body string, err error) {
	sp, err := p.stripeParams()
	if err != nil {
		return "", "", "", err
	}
	if base == "" {
		base = DefaultBase
	}
	q := &form.Values{}
	form.AppendTo(q, sp)
	return http.MethodPost, strings.TrimRight(base, "/") + webhookEndpointsPath, q.Encode(), nil
}

// CreateWebhookEndpoint creates a webhook endpoint: POST
// /v1/webhook_endpoints. Its answer's fields are made safe to print, and
// its secret, when there is one, must look like one (whsec_, printable,
// at most 255 bytes).
func (c *Client) CreateWebhookEndpoint(ctx context.Context, p EndpointParams) (Endpoint, error) {
	sp, err := p.stripeParams()
	if err != nil {
		return Endpoint{}, err
	}
	var we *stripe.WebhookEndpoint
	err = c.do(ctx, func(params *stripe.Params) error {
		sp.Params = *params
		sc := stripe.NewClient(c.key, stripe.WithBackends(&stripe.Backends{API: c.backend}))
		var callErr error
		we, callErr = sc.V1WebhookEndpoints.Create(params.Context, sp)
		return callErr
	})
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		apiErr.Need = "write access to Webhook Endpoints"
	}
	if err != nil {
		return Endpoint{}, fmt.Errorf("creating a webhook endpoint: %w", err)
	}
	if we == nil || we.ID == "" {
		return Endpoint{}, errors.New("creating a webhook endpoint: the answer has no id")
	}
	out := Endpoint{
		ID:         safetext.Clean(we.ID, 100),
		URL:        safetext.Clean(we.URL, 2048),
		APIVersion: safetext.Clean(we.APIVersion, 100),
		Livemode:   we.Livemode,
	}
	for _, e := range we.EnabledEvents {
		out.EnabledEvents = append(out.EnabledEvents, safetext.Clean(e, 200))
	}
	if s := we.Secret; s != "" {
		if !strings.HasPrefix(s, "whsec_") || len(s) > maxSecretBytes || !printable(s) {
			return out, fmt.Errorf("created webhook endpoint %s, but its signing secret is not a whsec_ secret; reveal it in the Dashboard", out.ID)
		}
		out.Secret = s
	}
	return out, nil
}
