package main

import (
	"strings"
	"testing"

	"github.com/oncehook/oncehook/internal/testenv"
)

// TestConfigCommand runs `oncehook config` on a configuration full of
// secrets, with a DATABASE_URL where nothing listens: it prints the
// effective configuration, no secret in it, without connecting; a bad
// value exits 1 naming the variable.
func TestConfigCommand(t *testing.T) {
	t.Parallel()
	secrets := []string{"whsec_FIRSTSECRET", "whsec_SECONDSECRET", "dbPASSWORD", "redisPASSWORD", "sk_live_APIKEY123",
		"ADMINTOKEN0123456789abcdef", "sinkPASSWORD", "sinkTOKEN", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
	nowhere := testenv.FreeAddr(t) // nothing listens: config must not connect
	env := receiverEnv(
		"STRIPE_WEBHOOK_SECRET="+secrets[0]+","+secrets[1],
		"DATABASE_URL=postgres://oncehook:"+secrets[2]+"@"+nowhere+"/oncehook?sslmode=disable",
		"REDIS_URL=redis://:"+secrets[3]+"@"+nowhere+"/0",
		"STRIPE_API_KEY="+secrets[4],
		"ADMIN_TOKEN="+secrets[5],
		"DESTINATIONS=billing,crm",
		"DESTINATION_BILLING_URL=https://hooks:"+secrets[6]+"@billing.example/in?token="+secrets[7],
		"DESTINATION_BILLING_TYPES=invoice.*",
		"DESTINATION_BILLING_LIVEMODE=live",
		"DESTINATION_BILLING_SIGNING_SECRET="+secrets[8],
		"DESTINATION_BILLING_RATE=600/m",
		"DESTINATION_BILLING_MAX_IN_FLIGHT=4",
		"DESTINATION_CRM_URL=stdout",
		"DESTINATION_CRM_ORDER_KEY=data.object.id",
		"RETENTION=45d", "DEDUP_TTL=1d12h",
	)
	res := runBinary(t, env, "config")
	if res.err != nil {
		t.Fatalf("config: %v\nstdout:\n%s\nstderr:\n%s", res.err, res.stdout, res.stderr)
	}
	for _, s := range secrets {
		if strings.Contains(res.stdout+res.stderr, s) {
			t.Errorf("config printed the secret %q:\n%s", s, res.stdout)
		}
	}
	for _, want := range []string{
		"\nSTRIPE_WEBHOOK_SECRET=whsec_xxxxx,whsec_xxxxx\n",
		"\nDATABASE_URL=postgres://oncehook:xxxxx@" + nowhere + "/oncehook?sslmode=xxxxx\n",
		"\nREDIS_URL=redis://:xxxxx@" + nowhere + "/0\n",
		"\nSTRIPE_API_KEY=sk_live_xxxxx\n",
		"\nADMIN_TOKEN=xxxxx\n",
		"\nDESTINATION_BILLING_URL=https://hooks:xxxxx@billing.example/in?token=xxxxx\n",
		"\nDESTINATION_BILLING_TYPES=invoice.*\n",
		"\nDESTINATION_BILLING_LIVEMODE=live\n",
		"\nDESTINATION_BILLING_SIGNING_SECRET=xxxxx\n",
		"\nDESTINATION_CRM_URL=stdout\n",
		"\nDESTINATION_CRM_SIGNING_SECRET=\n",
		"\nDESTINATION_CRM_ORDER_KEY=data.object.id\n", "\nDESTINATION_BILLING_ORDER_KEY=\n",
		"\nDESTINATION_BILLING_RATE=600/m\n", "\nDESTINATION_BILLING_MAX_IN_FLIGHT=4\n",
		"\nDESTINATION_CRM_RATE=\n", "\nDESTINATION_CRM_MAX_IN_FLIGHT=\n", // no limit
		"\nRETENTION=1080h0m0s\n", "\nDEDUP_TTL=36h0m0s\n",
		"\nLISTEN_ADDR=:8080\n", "\nWORKERS=32\n", // defaults
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("config: no %q in\n%s", strings.TrimSpace(want), res.stdout)
		}
	}

	for _, tc := range []struct{ set, want string }{
		{"WORKERS=many", `WORKERS: "many" is not a whole number`},
		{"RETENTION=2d", "RETENTION: \"2d\" is not a duration of at least 72h"},
		{"DESTINATION_BILING_TYPES=invoice.*", "DESTINATION_BILING_TYPES: no such destination setting"},
		{"DESTINATION_CRM_RATE=100", `DESTINATION_CRM_RATE: "100": want deliveries per second, minute or hour, such as 50/s, 600/m or 1000/h`},
	} {
		res := runBinary(t, append(env, tc.set), "config")
		if res.err == nil || !strings.Contains(res.stderr, tc.want) || res.stdout != "" {
			t.Errorf("config with %s: %v, want exit 1 and %q\nstdout:\n%s\nstderr:\n%s", tc.set, res.err, tc.want, res.stdout, res.stderr)
		}
		for _, s := range secrets {
			if strings.Contains(res.stderr, s) {
				t.Errorf("config with %s: the error shows the secret %q:\n%s", tc.set, s, res.stderr)
			}
		}
	}
}
