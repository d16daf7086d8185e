package main

import (
	"strings"
	"testing"
	"time"
)

func lookupFrom(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

var minimal = map[string]string{
	"STRIPE_WEBHOOK_SECRET": "whsec_abc",
	"DATABASE_URL":          "postgres://u:p@localhost:5432/db",
}

func TestLoadConfigDefaults(t *testing.T) {
	t.Parallel()
	c, err := loadConfig(lookupFrom(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.ListenAddr != ":8080" || c.AdminAddr != "127.0.0.1:9090" || c.Tolerance != 5*time.Minute ||
		c.DedupTTL != 72*time.Hour || c.DedupRecentIDs != 100_000 || c.MaxBodyBytes != 1<<20 || c.Workers != 32 || c.QueueSize != 10000 ||
		c.DeliveryMaxAttempts != 15 || c.DeliveryTimeout != 10*time.Second || c.Retention != 720*time.Hour || c.PruneDuty != 75 ||
		c.ShutdownTimeout != 30*time.Second || c.RedisURL != "" || len(c.Destinations) != 1 || c.Destinations[0].Name != "default" || c.Destinations[0].Target.Scheme != "stdout" || c.LogFormat != "json" {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestLoadConfigSecretsAndOptional(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"STRIPE_WEBHOOK_SECRET": "whsec_old, whsec_new",
		"DATABASE_URL":          minimal["DATABASE_URL"],
		"ADMIN_ADDR":            "",
		"SINK_URL":              "file:///var/log/events.jsonl",
		"REDIS_URL":             "rediss://cache:6380/1",
	}
	c, err := loadConfig(lookupFrom(env))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Secrets) != 2 || c.Secrets[1] != "whsec_new" || c.AdminAddr != "" || c.Destinations[0].Target.Scheme != "file" {
		t.Fatalf("config: %+v", c)
	}
	env["REDIS_URL"] = "redis+sentinel://:pw@s1:26379,s2/mymaster/2?sentinel_password=spw"
	if c, err := loadConfig(lookupFrom(env)); err != nil || c.RedisURL != env["REDIS_URL"] {
		t.Fatalf("a redis+sentinel:// REDIS_URL: %v, %+v", err, c)
	}
}

func TestLoadConfigNamesEveryBadVariable(t *testing.T) {
	t.Parallel()
	bad := map[string]string{
		"STRIPE_WEBHOOK_SECRET": "sk_live_supersecretvalue",
		"DATABASE_URL":          "mysql://nope",
		"SIGNATURE_TOLERANCE":   "5 minutes",
		"DEDUP_TTL":             "-1h",
		"DEDUP_RECENT_IDS":      "-1",
		"PRUNE_DUTY":            "0",
		"MAX_BODY_BYTES":        "lots",
		"WORKERS":               "0",
		"QUEUE_SIZE":            "-5",
		"REDIS_URL":             "http://cache",
		"SINK_URL":              "ftp://x/y",
		"LOG_LEVEL":             "loud",
		"LOG_FORMAT":            "xml",
		"SHUTDOWN_TIMEOUT":      "soon",
	}
	_, err := loadConfig(lookupFrom(bad))
	if err == nil {
		t.Fatal("want an error")
	}
	msg := err.Error()
	for name := range bad {
		if !strings.Contains(msg, name+":") {
			t.Errorf("error does not name %s:\n%s", name, msg)
		}
	}
	if strings.Contains(msg, "supersecretvalue") {
		t.Errorf("error leaks the secret:\n%s", msg)
	}
	if _, err := loadConfig(lookupFrom(map[string]string{})); err == nil ||
		!strings.Contains(err.Error(), "STRIPE_WEBHOOK_SECRET: required") || !strings.Contains(err.Error(), "DATABASE_URL: required") {
		t.Errorf("empty environment: %v", err)
	}
}

func TestLoadConfigHardening(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"STRIPE_WEBHOOK_SECRET": "whsec_abc", "DATABASE_URL": minimal["DATABASE_URL"],
		"STRIPE_IP_ALLOWLIST": "stripe, 10.0.0.0/8", "TRUSTED_PROXIES": "10.0.0.1",
		"MAX_CONCURRENCY": "100", "MAX_CONNS_PER_IP": "20", "READ_TIMEOUT": "5s", "IDLE_TIMEOUT": "30s",
	}
	c, err := loadConfig(lookupFrom(env))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Allowlist) != 13 || len(c.TrustedProxies) != 1 || c.MaxConcurrency != 100 || c.MaxConnsPerIP != 20 || c.ReadTimeout != 5*time.Second {
		t.Fatalf("config: %+v", c)
	}
	bad := map[string]string{
		"STRIPE_WEBHOOK_SECRET": "whsec_abc", "DATABASE_URL": minimal["DATABASE_URL"],
		"STRIPE_IP_ALLOWLIST": "not-an-ip", "TLS_CERT_FILE": "/no/such/cert.pem", "RETENTION": "24h",
	}
	_, err = loadConfig(lookupFrom(bad))
	for _, name := range []string{"STRIPE_IP_ALLOWLIST:", "TLS_CERT_FILE:", "RETENTION:"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("want an error naming %s, got %v", name, err)
		}
	}
	if _, err := loadConfig(lookupFrom(map[string]string{"STRIPE_WEBHOOK_SECRET": "whsec_abc", "DATABASE_URL": minimal["DATABASE_URL"], "TRUSTED_PROXIES": "10.0.0.1"})); err == nil || !strings.Contains(err.Error(), "TRUSTED_PROXIES: only used with STRIPE_IP_ALLOWLIST") {
		t.Errorf("TRUSTED_PROXIES alone: %v", err)
	}
}

// TestConfigErrorsNeverEchoCredentials: a URL variable that fails to parse
// is named in the error, but its password and query values are not.
func TestConfigErrorsNeverEchoCredentials(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, value string }{
		{"REDIS_URL", "redis://:PASSWORDVALUE@cache:6379/%zz"},
		{"REDIS_URL", "redis://user:PASSWORDVALUE@cache:6379/0?dial_timeout=SECRETVALUE"},
		{"REDIS_URL", "redis://:PASSWORDVALUE@n1:6379?addr=n2:6379&pool_size=SECRETVALUE"},
		{"REDIS_URL", "redis+sentinel://:PASSWORDVALUE@s1:26379,s2:26379/?sentinel_password=SECRETVALUE"},
		{"REDIS_URL", "redis+sentinel://u:PASSWORDVALUE@s1:26379/mymaster/zero?sentinel_password=SECRETVALUE"},
		{"REDIS_URL", "redis+sentinel://u:PASSWORDVALUE@s1:99999/mymaster?sentinel_password=SECRETVALUE"},
		{"REDIS_URL", "redis+sentinel://u:PASSWORDVALUE@s1/mymaster?sentinel_password=SECRETVALUE&read_timeout=SECRETVALUE"},
		{"DATABASE_URL", "postgres://u:PASSWORDVALUE@db:5432/app?connect_timeout=SECRETVALUE"},
		{"DATABASE_URL", "postgres://u:PASSWORDVALUE@db:5432/app?pool_max_conns=SECRETVALUE"},
		{"SINK_URL", "redis://:PASSWORDVALUE@cache:6379/0?stream=s&read_timeout=SECRETVALUE"},
	} {
		env := map[string]string{"STRIPE_WEBHOOK_SECRET": "whsec_abc", "DATABASE_URL": minimal["DATABASE_URL"]}
		env[tc.name] = tc.value
		_, err := loadConfig(lookupFrom(env))
		if err == nil || !strings.Contains(err.Error(), tc.name) {
			t.Errorf("%s=%s: %v, want an error naming the variable", tc.name, tc.value, err)
			continue
		}
		if strings.Contains(err.Error(), "PASSWORDVALUE") || strings.Contains(err.Error(), "SECRETVALUE") {
			t.Errorf("%s: the error shows a credential: %v", tc.name, err)
		}
	}
}

// TestLoadConfigBoundsDeliveryAndQueue: DELIVERY_MAX_ATTEMPTS has a ceiling
// (2^attempts backoff), and QUEUE_MAX_BYTES must hold one event.
func TestLoadConfigBoundsDeliveryAndQueue(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, value string }{
		{"DELIVERY_MAX_ATTEMPTS", "100000"},
		{"DELIVERY_MAX_ATTEMPTS", "1001"},
		{"QUEUE_MAX_BYTES", "1000"},
		{"QUEUE_MAX_BYTES", "524288"},   // less than MAX_BODY_BYTES
		{"REDIS_KEY_PREFIX", "shared:"}, // without REDIS_URL
		{"MAX_CONNECTIONS", "0"},
		{"MAX_CONNECTIONS", "2000000"},
		{"MAX_INFLIGHT_BODY_BYTES", "65536"},   // less than MAX_BODY_BYTES
		{"MAX_INFLIGHT_BODY_BYTES", "1048576"}, // less than twice MAX_BODY_BYTES
	} {
		env := map[string]string{"STRIPE_WEBHOOK_SECRET": "whsec_abc", "DATABASE_URL": minimal["DATABASE_URL"]}
		env[tc.name] = tc.value
		if _, err := loadConfig(lookupFrom(env)); err == nil || !strings.Contains(err.Error(), tc.name) {
			t.Errorf("%s=%s: %v, want an error naming it", tc.name, tc.value, err)
		}
	}
	env := map[string]string{"STRIPE_WEBHOOK_SECRET": "whsec_abc", "DATABASE_URL": minimal["DATABASE_URL"],
		"DELIVERY_MAX_ATTEMPTS": "1000", "QUEUE_MAX_BYTES": "2097152", "REDIS_URL": "redis://cache:6379/0", "REDIS_KEY_PREFIX": "shared:"}
	c, err := loadConfig(lookupFrom(env))
	if err != nil || c.DeliveryMaxAttempts != 1000 || c.QueueMaxBytes != 2<<20 || c.RedisKeyPrefix != "shared:" {
		t.Fatalf("%+v, %v", c, err)
	}
}

// TestLoadConfigAdminToken: the console's token must be long enough and
// needs the admin listener; the error never shows the token.
func TestLoadConfigAdminToken(t *testing.T) {
	t.Parallel()
	base := func(extra map[string]string) map[string]string {
		env := map[string]string{"STRIPE_WEBHOOK_SECRET": "whsec_abc", "DATABASE_URL": minimal["DATABASE_URL"]}
		for k, v := range extra {
			env[k] = v
		}
		return env
	}
	c, err := loadConfig(lookupFrom(base(map[string]string{"ADMIN_TOKEN": "a-long-enough-console-token"})))
	if err != nil || c.AdminToken != "a-long-enough-console-token" {
		t.Fatalf("good token: %v %q", err, c.AdminToken)
	}
	for name, env := range map[string]map[string]string{
		"short":     {"ADMIN_TOKEN": "tooShortTok"},
		"admin off": {"ADMIN_TOKEN": "a-long-enough-console-token", "ADMIN_ADDR": ""},
	} {
		_, err := loadConfig(lookupFrom(base(env)))
		if err == nil || !strings.Contains(err.Error(), "ADMIN_TOKEN:") {
			t.Errorf("%s: want an error naming ADMIN_TOKEN, got %v", name, err)
		} else if strings.Contains(err.Error(), env["ADMIN_TOKEN"]) {
			t.Errorf("%s: the error shows the token: %v", name, err)
		}
	}
}
