package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"

	"github.com/oncehook/oncehook/sink"
)

// sinkTarget is what SINK_URL names: "stdout", or a file path.
type sinkTarget struct{ path string }

func parseSinkURL(raw string) (sinkTarget, error) {
	if raw == "stdout" {
		return sinkTarget{}, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return sinkTarget{}, fmt.Errorf("%q is not a URL", raw)
	}
	switch u.Scheme {
	case "file":
		if u.Path == "" || u.Host != "" {
			return sinkTarget{}, errors.New("a file sink needs an absolute path: file:///path/to/events.jsonl")
		}
		return sinkTarget{path: u.Path}, nil
	default:
		return sinkTarget{}, fmt.Errorf("unsupported sink %q: use stdout or file:///path", raw)
	}
}

func (t sinkTarget) open() (sink.Sink, error) {
	if t.path == "" {
		return sink.NewWriter(os.Stdout), nil
	}
	return sink.OpenFile(t.path)
}
