package receiver

import (
	"encoding/json"

	"github.com/valyala/fasthttp"

	"github.com/oncehook/oncehook/dedup"
)

func writeJSON(ctx *fasthttp.RequestCtx, code int, body string) {
	ctx.SetStatusCode(code)
	ctx.SetContentType("application/json")
	ctx.SetBodyString(body)
}

func writeJSONValue(ctx *fasthttp.RequestCtx, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = fasthttp.StatusInternalServerError, []byte(`{"error":"encoding the response failed"}`)
	}
	ctx.SetStatusCode(code)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

// writeError answers {"error": msg}.
func writeError(ctx *fasthttp.RequestCtx, code int, msg string) {
	writeJSONValue(ctx, code, struct {
		Error string `json:"error"`
	}{msg})
}

// writeOutcome answers 200 {"status":"accepted"|"duplicate","event_id":id}
// without allocating. event.Parse admits only ids that need no JSON escaping.
func writeOutcome(ctx *fasthttp.RequestCtx, o dedup.Outcome, id string) {
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	ctx.Response.ResetBody()
	_, _ = ctx.Write(statusPrefix(o))
	_, _ = ctx.WriteString(id)
	_, _ = ctx.WriteString(`"}`)
}

var (
	acceptedPrefix  = []byte(`{"status":"accepted","event_id":"`)
	duplicatePrefix = []byte(`{"status":"duplicate","event_id":"`)
)

func statusPrefix(o dedup.Outcome) []byte {
	if o == dedup.Accepted {
		return acceptedPrefix
	}
	return duplicatePrefix
}
