package receiver

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestParsePrefixes(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "ips.txt")
	if err := os.WriteFile(file, []byte("# mine, owner ops@example.com\n198.51.100.7\n2001:db8::/32\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ps, err := ParsePrefixes("10.0.0.0/8, 192.0.2.1,stripe,@" + file)
	if err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]bool{
		"10.1.2.3": true, "192.0.2.1": true, "192.0.2.2": false, "3.18.12.63": true, "54.187.216.72": true,
		"198.51.100.7": true, "2001:db8::1": true, "::ffff:10.9.9.9": true, "11.0.0.1": false,
	} {
		if got := ps.Contains(netip.MustParseAddr(ip)); got != want {
			t.Errorf("Contains(%s) = %v, want %v", ip, got, want)
		}
	}
	nested := filepath.Join(t.TempDir(), "nested.txt")
	_ = os.WriteFile(nested, []byte("@"+file+"\n"), 0o600)
	for _, bad := range []string{"10.0.0.300", "10.0.0.0/33", "example.com", "@/no/such/file", "@" + nested} {
		if _, err := ParsePrefixes(bad); err == nil {
			t.Errorf("ParsePrefixes(%q): want error", bad)
		}
	}
}

func TestForwardedForJoinsEveryLine(t *testing.T) {
	t.Parallel()
	var h fasthttp.RequestHeader
	h.Add("X-Forwarded-For", "3.18.12.63")  // sent by the client
	h.Add("X-Forwarded-For", "203.0.113.9") // added by the proxy
	trusted, _ := ParsePrefixes("10.0.0.0/8")
	got, ok := clientIP(net.ParseIP("10.0.0.5"), forwardedFor(&h), trusted)
	if !ok || got.String() != "203.0.113.9" {
		t.Fatalf("clientIP = %v %v, want the proxy-added 203.0.113.9", got, ok)
	}
}

func TestClientIP(t *testing.T) {
	t.Parallel()
	trusted, _ := ParsePrefixes("10.0.0.0/8")
	for _, c := range []struct {
		peer, xff string
		trusted   Prefixes
		want      string
		ok        bool
	}{
		{"198.51.100.1", "3.18.12.63", nil, "198.51.100.1", true},                // no proxies trusted: header ignored
		{"198.51.100.1", "3.18.12.63", trusted, "198.51.100.1", true},            // untrusted peer: header ignored
		{"10.0.0.5", "3.18.12.63", trusted, "3.18.12.63", true},                  // behind the load balancer
		{"10.0.0.5", "3.18.12.63, 10.0.0.9", trusted, "3.18.12.63", true},        // two proxy hops
		{"10.0.0.5", "54.187.216.72, 203.0.113.9", trusted, "203.0.113.9", true}, // a forged left part is not believed
		{"10.0.0.5", "", trusted, "10.0.0.5", true},
		{"10.0.0.5", "garbage", trusted, "", false},
	} {
		got, ok := clientIP(net.ParseIP(c.peer), []byte(c.xff), c.trusted)
		if ok != c.ok || (ok && got.String() != c.want) {
			t.Errorf("clientIP(%s, %q) = %v %v, want %s %v", c.peer, c.xff, got, ok, c.want, c.ok)
		}
	}
}
