package dedup_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oncehook/oncehook/dedup"
)

func TestParseSentinelURL(t *testing.T) {
	t.Parallel()
	opt, err := dedup.ParseSentinelURL("redis+sentinel://app:p%40ss@s1:26380,s2,[::1]:26381/orders/3?sentinel_username=sen&sentinel_password=spw")
	if err != nil {
		t.Fatal(err)
	}
	if opt.MasterName != "orders" || opt.DB != 3 || opt.Username != "app" || opt.Password != "p@ss" ||
		opt.SentinelUsername != "sen" || opt.SentinelPassword != "spw" ||
		!slices.Equal(opt.SentinelAddrs, []string{"s1:26380", "s2:26379", "[::1]:26381"}) {
		t.Fatalf("options: %+v", opt)
	}
	opt, err = dedup.ParseSentinelURL("redis+sentinel://s1:26379/orders")
	if err != nil || opt.DB != 0 || opt.Password != "" || opt.SentinelPassword != "" {
		t.Fatalf("without a db or credentials: %+v, %v", opt, err)
	}
}

// TestParseSentinelURLRefusals: each malformed URL is refused with an
// error that names the problem and shows no password or query value.
func TestParseSentinelURLRefusals(t *testing.T) {
	t.Parallel()
	const pw = "PASSWORDVALUE"
	for _, tc := range []struct{ url, want string }{
		{"redis+sentinel://:" + pw + "@s1:26379", "no master name"},
		{"redis+sentinel://:" + pw + "@s1:26379/", "no master name"},
		{"redis+sentinel://:" + pw + "@s1:26379//0", "no master name"},
		{"redis+sentinel://:" + pw + "@s1:26379/orders/x", "bad database number"},
		{"redis+sentinel://:" + pw + "@s1:26379/orders/-1", "bad database number"},
		{"redis+sentinel://:" + pw + "@s1:26379/orders/1/2", "bad database number"},
		{"redis+sentinel://:" + pw + "@s1:0/orders", "bad port"},
		{"redis+sentinel://:" + pw + "@s1:70000/orders", "bad port"},
		{"redis+sentinel://:" + pw + "@s1:http/orders", "bad port"},
		{"redis+sentinel://:" + pw + "@s1:26379,,s2:26379/orders", "empty Sentinel address"},
		{"redis+sentinel://:" + pw + "@:26379/orders", "no host"},
		{"redis+sentinel://:" + pw + "@/orders", "no Sentinel address"},
		{"redis+sentinel://:" + pw + "@s1:26379/orders?read_timeout=" + pw, `unknown query parameter "read_timeout"`},
		{"redis+sentinel://:" + pw + "@s1:26379/orders?sentinel_password=" + pw + "&sentinel_password=" + pw, "given 2 times"},
		{"redis+sentinel://:" + pw + "@s1:26379/orders?sentinel_username=" + pw, "sentinel_username without sentinel_password"},
		{"redis+sentinel://:" + pw + "@s1:26379/orders#" + pw, "no #fragment"},
		{"redis+sentinel://:" + pw + "@s1:26379/orders?%zz=" + pw, "unreadable query"},
	} {
		_, err := dedup.ParseSentinelURL(tc.url)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.url, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), pw) {
			t.Errorf("%s: the error shows a secret: %v", tc.url, err)
		}
		if _, err := dedup.NewRedisClient(tc.url, time.Second); err == nil {
			t.Errorf("%s: NewRedisClient accepts it", tc.url)
		}
	}
}

// TestParseSentinelURLQuotesNoPieceOfARawPassword: a password with a raw
// / or ? ends the host list early, and the error must quote no piece of
// it (it did: `bad port in Sentinel address "user:abc"`).
func TestParseSentinelURLQuotesNoPieceOfARawPassword(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		"redis+sentinel://user:SECRETA/SECRETB@s1:26379/orders",
		"redis+sentinel://:SECRETA?SECRETB@s1:26379/orders",
		"redis+sentinel://:SECRETA#SECRETB@s1:26379/orders",
	} {
		_, err := dedup.ParseSentinelURL(raw)
		if err == nil || !strings.Contains(err.Error(), "percent-encode") {
			t.Errorf("%s: %v, want an error asking to percent-encode", raw, err)
			continue
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%s: the error shows a piece of the password: %v", raw, err)
		}
	}
}
