package receiver

import (
	"bufio"
	"bytes"
	_ "embed"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/valyala/fasthttp"
)

// stripeWebhookIPs is Stripe's published list of webhook source addresses
// (https://stripe.com/files/ips/ips_webhooks.txt), as of this release. Point
// STRIPE_IP_ALLOWLIST at a file to follow changes without a new release.
//
//go:embed stripe_webhook_ips.txt
var stripeWebhookIPs string

// Prefixes is a set of addresses and networks.
type Prefixes []netip.Prefix

// ParsePrefixes reads a list of IPs and CIDRs separated by commas or new
// lines; "#" starts a comment. "stripe" stands for Stripe's webhook IPs, and
// "@/path" for the list in that file.
func ParsePrefixes(list string) (Prefixes, error) { return parsePrefixes(list, true) }

func parsePrefixes(list string, files bool) (Prefixes, error) {
	var items []string
	sc := bufio.NewScanner(strings.NewReader(list))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		items = append(items, strings.Split(line, ",")...)
	}
	var out Prefixes
	for _, item := range items {
		item = strings.TrimSpace(item)
		switch {
		case item == "":
			continue
		case item == "stripe":
			more, err := parsePrefixes(stripeWebhookIPs, false)
			if err != nil {
				return nil, err
			}
			out = append(out, more...)
		case strings.HasPrefix(item, "@"):
			if !files {
				return nil, fmt.Errorf("%q: a list file may not include other files", item)
			}
			b, err := os.ReadFile(item[1:])
			if err != nil {
				return nil, fmt.Errorf("reading the list %s: %w", item[1:], err)
			}
			more, err := parsePrefixes(string(b), false)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", item[1:], err)
			}
			out = append(out, more...)
		case strings.Contains(item, "/"):
			p, err := netip.ParsePrefix(item)
			if err != nil {
				return nil, fmt.Errorf("%q is not an IP or CIDR", item)
			}
			out = append(out, p.Masked())
		default:
			a, err := netip.ParseAddr(item)
			if err != nil {
				return nil, fmt.Errorf("%q is not an IP or CIDR", item)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
		}
	}
	return out, nil
}

// Contains reports whether a is in the set.
func (ps Prefixes) Contains(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwardedFor joins every X-Forwarded-For line in order: a proxy may add
// its own line after one the client sent.
func forwardedFor(h *fasthttp.RequestHeader) []byte {
	lines := h.PeekAll("X-Forwarded-For")
	if len(lines) == 1 {
		return lines[0]
	}
	return bytes.Join(lines, []byte(","))
}

// clientIP is the address a request came from: the peer, or, when the peer
// is a trusted proxy, the rightmost X-Forwarded-For address that is not a
// trusted proxy (addresses left of it could be forged by the client).
func clientIP(peer net.IP, xff []byte, trusted Prefixes) (netip.Addr, bool) {
	a, ok := netip.AddrFromSlice(peer)
	if !ok {
		return netip.Addr{}, false
	}
	a = a.Unmap()
	if len(trusted) == 0 || !trusted.Contains(a) || len(xff) == 0 {
		return a, true
	}
	hops := strings.Split(string(xff), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		h, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return netip.Addr{}, false
		}
		if !trusted.Contains(h) {
			return h.Unmap(), true
		}
	}
	return a, true // every hop is a trusted proxy
}
