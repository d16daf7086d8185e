package main

import (
	"encoding/json"
	"testing"
)

// TestJSONForTermDecodesTheSame: the escapes jsonForTerm adds are JSON's
// own, so the output decodes to the same values, and nothing a terminal
// acts on is left raw.
func TestJSONForTermDecodesTheSame(t *testing.T) {
	in := map[string]string{"reason": "500 \x1b]0;x\x07 \u009b31m \x7f \u202eevil \u2028 é 😀", "plain": "ok"}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	out := jsonForTerm(b)
	if bad := rawControls(string(out)); bad != "" {
		t.Fatalf("jsonForTerm left %q raw: %s", bad, out)
	}
	var back map[string]string
	if err := json.Unmarshal(out, &back); err != nil || back["reason"] != in["reason"] || back["plain"] != "ok" {
		t.Fatalf("decoded %q (%v), want %q", back, err, in)
	}
	if plain := []byte(`{"a":"b"}`); string(jsonForTerm(plain)) != string(plain) {
		t.Fatal("jsonForTerm changed JSON with nothing to escape")
	}
}
