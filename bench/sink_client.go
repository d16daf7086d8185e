package bench

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// SinkClient queries a SinkServer.
type SinkClient struct {
	base string
	http *http.Client
}

// NewSinkClient returns a client for the sink at base (http://host:port).
func NewSinkClient(base string) (*SinkClient, error) {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("sink url %q: want http://host:port", base)
	}
	return &SinkClient{base: "http://" + u.Host, http: &http.Client{Timeout: 30 * time.Second}}, nil
}

// Summary returns what the sink saw of run at destination "" (/).
func (c *SinkClient) Summary(ctx context.Context, run string) (RunSummary, error) {
	var s RunSummary
	b, err := c.get(ctx, "/runs/"+run)
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(b, &s)
}

// Summaries returns what the sink saw of run at each destination that got
// it, keyed by destination.
func (c *SinkClient) Summaries(ctx context.Context, run string) (map[string]RunSummary, error) {
	b, err := c.get(ctx, "/runs/"+run+"/dests")
	if err != nil {
		return nil, err
	}
	var list []RunSummary
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, err
	}
	out := make(map[string]RunSummary, len(list))
	for _, s := range list {
		out[s.Dest] = s
	}
	return out, nil
}

// Counts returns run's per-event delivery counts at dest, one byte per
// event n.
func (c *SinkClient) Counts(ctx context.Context, run, dest string) ([]byte, error) {
	return c.get(ctx, "/runs/"+run+"/counts?dest="+url.QueryEscape(dest))
}

// Order returns run's arrival ranks at dest (SinkServer.Order), one per
// event n.
func (c *SinkClient) Order(ctx context.Context, run, dest string) ([]uint32, error) {
	b, err := c.get(ctx, "/runs/"+run+"/order?dest="+url.QueryEscape(dest))
	if err != nil {
		return nil, err
	}
	out := make([]uint32, len(b)/4)
	for i := range out {
		out[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return out, nil
}

// Stats returns the sink's totals.
func (c *SinkClient) Stats(ctx context.Context) (SinkStats, error) {
	var s SinkStats
	b, err := c.get(ctx, "/stats")
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(b, &s)
}

// Forget makes the sink drop run's counters.
func (c *SinkClient) Forget(ctx context.Context, run string) error {
	_, err := c.do(ctx, http.MethodDelete, "/runs/"+run)
	return err
}

func (c *SinkClient) get(ctx context.Context, path string) ([]byte, error) {
	return c.do(ctx, http.MethodGet, path)
}

func (c *SinkClient) do(ctx context.Context, method, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("sink %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("sink %s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("sink %s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}

// WaitReady polls GET base/readyz until it answers 200, up to timeout.
// Receivers, the floor and the sink all answer it.
func WaitReady(ctx context.Context, base string, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("answered %s", resp.Status)
		}
		last = err
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: %w", base, timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
