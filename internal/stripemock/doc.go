// Package stripemock starts Stripe's official API mock, stripe-mock
// (github.com/stripe/stripe-mock), for wire-format tests of Stripe clients.
//
// stripe-mock validates every request against Stripe's OpenAPI spec: an
// unknown or mistyped query or form parameter gets a 400
// invalid_request_error, a missing or non-test API key a 401. It answers
// valid requests with canned fixtures, so assert on what is sent, not on
// the data returned. It ignores the Stripe-Version header unless started
// with -strict-version-check, and then rejects any version other than the
// one of its bundled spec.
//
// The binary is STRIPE_MOCK_PATH, else stripe-mock on PATH, else
// stripe-mock in the go install directory (GOBIN, or GOPATH/bin). When
// none exists it is installed once per process, under a file lock shared
// by parallel test binaries, with
//
//	go install github.com/stripe/stripe-mock@v0.203.0
package stripemock
