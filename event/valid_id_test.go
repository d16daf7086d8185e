package event_test

import (
	"strings"
	"testing"

	"github.com/oncehook/oncehook/event"
)

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		"evt_1NqV2x":             true,
		"":                       false,
		"evt_\x00":               false,
		"evt_\x1b[2J":            false,
		"evt 1":                  false,
		`evt_"`:                  false,
		`evt_\`:                  false,
		"evt_é":                  false,
		strings.Repeat("a", 255): true,
		strings.Repeat("a", 256): false,
	} {
		if got := event.ValidID(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
		// Parse agrees.
		body := `{"id":"` + strings.ReplaceAll(strings.ReplaceAll(id, `\`, `\\`), `"`, `\"`) + `","object":"event","type":"invoice.paid","created":1,"livemode":false,"data":{"object":{}}}`
		if _, err := event.Parse([]byte(body)); (err == nil) != want && !strings.ContainsAny(id, "\x00\x1b") {
			t.Errorf("Parse of an event with id %q: %v, ValidID says %v", id, err, want)
		}
	}
}
