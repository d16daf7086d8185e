package sink_test

import (
	"testing"

	"github.com/oncehook/oncehook/sink"
)

func TestOrderKeyHeader(t *testing.T) {
	for key, want := range map[string]string{
		"sub_1Qx":      "sub_1Qx",
		"cus_é":        "cus_%C3%A9",
		"a b\r\nX: y":  "a%20b%0D%0AX:%20y",
		"sha256:00ff1": "sha256:00ff1",
	} {
		if got := sink.OrderKeyHeader(key); got != want {
			t.Errorf("OrderKeyHeader(%q) = %q, want %q", key, got, want)
		}
	}
}
