package stripefake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// cmpOrder orders events as /v1/events lists them: newest first by created,
// ties by id descending.
func cmpOrder(a, b *Event) int {
	if c := b.Created.Compare(a.Created); c != 0 {
		return c
	}
	return strings.Compare(b.ID, a.ID)
}

// listQuery is a parsed /v1/events query.
type listQuery struct {
	limit            int
	startingAfter    string
	endingBefore     string
	typ              string
	types            []string
	deliverySuccess  *bool
	created          *int64
	gt, gte, lt, lte *int64
}

func (q *listQuery) match(ev *Event) bool {
	c := ev.Created.Unix()
	switch {
	case q.created != nil && c != *q.created,
		q.gt != nil && c <= *q.gt,
		q.gte != nil && c < *q.gte,
		q.lt != nil && c >= *q.lt,
		q.lte != nil && c > *q.lte,
		q.deliverySuccess != nil && ev.DeliverySuccess != *q.deliverySuccess,
		len(q.types) > 0 && !slices.Contains(q.types, ev.Type):
		return false
	case q.typ == "":
		return true
	}
	if prefix, ok := strings.CutSuffix(q.typ, "*"); ok {
		return strings.HasPrefix(ev.Type, prefix)
	}
	return ev.Type == q.typ
}

// paramError is a 400 invalid_request_error naming param.
type paramError struct{ param, msg string }

func badParam(param, format string, args ...any) *paramError {
	return &paramError{param: param, msg: fmt.Sprintf(format, args...)}
}

func (e *paramError) body() []byte { return errBody("invalid_request_error", "", e.param, e.msg) }

// indexed reports whether key is name, name[] or name[N].
func indexed(key, name string) bool {
	rest, ok := strings.CutPrefix(key, name)
	if !ok {
		return false
	}
	if rest == "" || rest == "[]" {
		return true
	}
	n, ok := strings.CutPrefix(rest, "[")
	if n, ok = strings.CutSuffix(n, "]"); !ok || n == "" {
		return false
	}
	_, err := strconv.ParseUint(n, 10, 31)
	return err == nil
}

// parseQuery parses raw into values with keys in a stable order.
func parseQuery(raw string) (url.Values, []string, *paramError) {
	v, err := url.ParseQuery(raw)
	if err != nil {
		return nil, nil, badParam("", "Invalid query string: %v", err)
	}
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return v, keys, nil
}

// checkExpand rejects any expand value: nothing on an event expands.
func checkExpand(vals []string) *paramError {
	for _, x := range vals {
		if x != "" {
			return badParam("expand", "This property cannot be expanded (%s).", x)
		}
	}
	return nil
}

func parseListQuery(raw string) (*listQuery, *paramError) {
	v, keys, perr := parseQuery(raw)
	if perr != nil {
		return nil, perr
	}
	q := &listQuery{limit: 10}
	integer := func(key, s string) (*int64, *paramError) {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, badParam(key, "Invalid integer: %s", s)
		}
		return &n, nil
	}
	var createdHash bool
	for _, key := range keys {
		vals := v[key]
		val := vals[len(vals)-1]
		switch {
		case indexed(key, "types"):
			for _, t := range vals {
				if t != "" {
					q.types = append(q.types, t)
				}
			}
			continue
		case indexed(key, "expand"):
			if perr := checkExpand(vals); perr != nil {
				return nil, perr
			}
			continue
		}
		var err *paramError
		switch key {
		case "limit":
			if val == "" {
				continue
			}
			n, perr := integer(key, val)
			switch {
			case perr != nil:
				err = perr
			case *n < 1:
				err = badParam(key, "This value must be greater than or equal to 1.")
			case *n > 100:
				err = badParam(key, "This value must be less than or equal to 100.")
			default:
				q.limit = int(*n)
			}
		case "starting_after":
			q.startingAfter = val
		case "ending_before":
			q.endingBefore = val
		case "type":
			q.typ = val
		case "delivery_success":
			switch val {
			case "":
			case "true", "false":
				b := val == "true"
				q.deliverySuccess = &b
			default:
				err = badParam(key, "Invalid boolean: %s", val)
			}
		case "created":
			if val != "" {
				q.created, err = integer(key, val)
			}
		case "created[gt]", "created[gte]", "created[lt]", "created[lte]":
			if val == "" {
				continue
			}
			createdHash = true
			var n *int64
			if n, err = integer(key, val); err == nil {
				switch key {
				case "created[gt]":
					q.gt = n
				case "created[gte]":
					q.gte = n
				case "created[lt]":
					q.lt = n
				default:
					q.lte = n
				}
			}
		default:
			err = badParam(key, "Received unknown parameter: %s", key)
		}
		if err != nil {
			return nil, err
		}
	}
	switch {
	case q.created != nil && createdHash:
		return nil, badParam("created", "Invalid created: pass either an integer or a hash of gt, gte, lt and lte, not both.")
	case len(q.types) > 20:
		return nil, badParam("types", "Invalid array: types may contain at most 20 elements, got %d.", len(q.types))
	case q.typ != "" && len(q.types) > 0:
		return nil, badParam("types", "You may pass either type or types, but not both.")
	case q.startingAfter != "" && q.endingBefore != "":
		return nil, badParam("ending_before", "You may only specify one of these parameters: ending_before, starting_after.")
	}
	return q, nil
}

// list answers GET /v1/events.
func (s *Server) list(raw, version string) (int, []byte) {
	q, perr := parseListQuery(raw)
	if perr != nil {
		return http.StatusBadRequest, perr.body()
	}
	page, hasMore, perr := s.page(q)
	if perr != nil {
		return http.StatusBadRequest, perr.body()
	}
	var b bytes.Buffer
	b.WriteString(`{"object":"list","data":[`)
	for i, ev := range page {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(renderV1(ev, version))
	}
	fmt.Fprintf(&b, `],"has_more":%t,"url":"/v1/events"}`, hasMore)
	return http.StatusOK, b.Bytes()
}

// page selects the events of one list page, newest first.
func (s *Server) page(q *listQuery) ([]*Event, bool, *paramError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cursor := func(param, id string) (int, *paramError) {
		ev := s.events[id]
		if ev == nil || ev.Object != "event" {
			return 0, &paramError{param: param, msg: fmt.Sprintf("No such event: '%s'", id)}
		}
		i, _ := slices.BinarySearchFunc(s.listed, ev, cmpOrder)
		return i, nil
	}
	var out []*Event
	if q.endingBefore != "" {
		at, perr := cursor("ending_before", q.endingBefore)
		if perr != nil {
			return nil, false, perr
		}
		for i := at - 1; i >= 0 && len(out) <= q.limit; i-- {
			if q.match(s.listed[i]) {
				out = append(out, s.listed[i])
			}
		}
		hasMore := len(out) > q.limit
		out = out[:min(len(out), q.limit)]
		slices.Reverse(out)
		return out, hasMore, nil
	}
	start := 0
	if q.startingAfter != "" {
		at, perr := cursor("starting_after", q.startingAfter)
		if perr != nil {
			return nil, false, perr
		}
		start = at + 1
	}
	for i := start; i < len(s.listed) && len(out) <= q.limit; i++ {
		if q.match(s.listed[i]) {
			out = append(out, s.listed[i])
		}
	}
	hasMore := len(out) > q.limit
	return out[:min(len(out), q.limit)], hasMore, nil
}

// retrieve answers GET /v1/events/{id}.
func (s *Server) retrieve(id, raw, version string) (int, []byte) {
	v, keys, perr := parseQuery(raw)
	for _, k := range keys {
		if perr != nil {
			break
		}
		if indexed(k, "expand") {
			perr = checkExpand(v[k])
		} else {
			perr = badParam(k, "Received unknown parameter: %s", k)
		}
	}
	if perr != nil {
		return http.StatusBadRequest, perr.body()
	}
	s.mu.Lock()
	ev := s.events[id]
	s.mu.Unlock()
	if ev == nil || ev.Object != "event" {
		return http.StatusNotFound, errBody("invalid_request_error", "resource_missing", "id", fmt.Sprintf("No such event: '%s'", id))
	}
	return http.StatusOK, renderV1(ev, version)
}

// retrieveThin answers GET /v2/core/events/{id}.
func (s *Server) retrieveThin(id, raw string) (int, []byte) {
	_, keys, perr := parseQuery(raw)
	if perr == nil && len(keys) > 0 {
		perr = badParam(keys[0], "Received unknown parameter: %s", keys[0])
	}
	if perr != nil {
		return http.StatusBadRequest, v2ErrBody("invalid_request_error", "invalid_request", perr.msg)
	}
	if status, ok := s.takeThinFailure(id); ok {
		return status, v2InjectedError(status)
	}
	s.mu.Lock()
	th, ok := s.thins[id]
	ev := s.events[id]
	s.mu.Unlock()
	switch {
	case ok:
		return http.StatusOK, slices.Clone(th.body)
	case ev != nil && ev.Object == ObjectThin:
		return http.StatusOK, renderThin(ev)
	}
	return http.StatusNotFound, v2ErrBody("not_found", "not_found", fmt.Sprintf("No such v2.core.event: '%s'", id))
}

// renderV1 is the snapshot event JSON of ev in API version version.
func renderV1(ev *Event, version string) []byte {
	var b bytes.Buffer
	b.WriteString(`{"id":`)
	b.Write(jsonString(ev.ID))
	b.WriteString(`,"object":"event","api_version":`)
	b.Write(jsonString(version))
	fmt.Fprintf(&b, `,"created":%d,"data":{"object":`, ev.Created.Unix())
	if ev.Data != nil {
		b.Write(ev.Data)
	} else {
		b.Write(defaultObject(ev))
	}
	pending := 0
	if !ev.DeliverySuccess {
		pending = 1
	}
	fmt.Fprintf(&b, `},"livemode":%t,"pending_webhooks":%d,"request":{"id":null,"idempotency_key":null},"type":`, ev.Livemode, pending)
	b.Write(jsonString(ev.Type))
	b.WriteByte('}')
	return b.Bytes()
}

// renderThin is a thin v2 event body for ev; Data, if set, is its "data".
func renderThin(ev *Event) []byte {
	var b bytes.Buffer
	b.WriteString(`{"id":`)
	b.Write(jsonString(ev.ID))
	b.WriteString(`,"object":"v2.core.event","context":null,"created":`)
	b.Write(jsonString(ev.Created.UTC().Format("2006-01-02T15:04:05.000Z")))
	b.WriteString(`,"data":`)
	if ev.Data != nil {
		b.Write(ev.Data)
	} else {
		b.WriteString(`{}`)
	}
	fmt.Fprintf(&b, `,"livemode":%t,"reason":null,"related_object":null,"type":`, ev.Livemode)
	b.Write(jsonString(ev.Type))
	b.WriteByte('}')
	return b.Bytes()
}

// objectNames maps an event type's resource to Stripe's object name where
// they differ.
var objectNames = map[string]string{
	"customer.subscription": "subscription",
	"customer.discount":     "discount",
	"customer.source":       "source",
	"customer.tax_id":       "tax_id",
	"charge.dispute":        "dispute",
	"charge.refund":         "refund",
}

var idPrefixes = map[string]string{
	"invoice": "in", "customer": "cus", "charge": "ch", "payment_intent": "pi",
	"subscription": "sub", "checkout.session": "cs_test", "dispute": "dp",
	"refund": "re", "product": "prod", "price": "price", "payout": "po",
}

// defaultObject is a minimal data.object for ev: {"id":"in_X","object":"invoice"}
// for evt_X of type invoice.paid.
func defaultObject(ev *Event) []byte {
	name := ev.Type
	if i := strings.LastIndexByte(name, '.'); i > 0 {
		name = name[:i]
	}
	if n, ok := objectNames[name]; ok {
		name = n
	}
	prefix, ok := idPrefixes[name]
	if !ok {
		prefix = "obj"
	}
	var b bytes.Buffer
	b.WriteString(`{"id":`)
	b.Write(jsonString(prefix + "_" + strings.TrimPrefix(ev.ID, "evt_")))
	b.WriteString(`,"object":`)
	b.Write(jsonString(name))
	b.WriteByte('}')
	return b.Bytes()
}

// jsonString is s as a JSON string, without HTML escaping (as Stripe).
func jsonString(s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

type v1Error struct {
	Code    string `json:"code,omitempty"`
	Message string `json:"message"`
	Param   string `json:"param,omitempty"`
	Type    string `json:"type"`
}

// errBody is a v1 error body {"error":{"code":..,"message":..,"param":..,"type":..}}.
func errBody(typ, code, param, msg string) []byte {
	return marshal(struct {
		Error v1Error `json:"error"`
	}{v1Error{Code: code, Message: msg, Param: param, Type: typ}})
}

// v2ErrBody is a v2 error body {"error":{"type":..,"code":..,"message":..}}.
func v2ErrBody(typ, code, msg string) []byte {
	return marshal(struct {
		Error struct {
			Type    string `json:"type"`
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}{Error: struct {
		Type    string `json:"type"`
		Code    string `json:"code"`
		Message string `json:"message"`
	}{typ, code, msg}})
}

func marshal(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// injectedError is the v1 body of a FailNext failure.
func injectedError(status int) []byte {
	switch {
	case status == http.StatusTooManyRequests:
		return errBody("invalid_request_error", "rate_limit", "", "Request rate limit exceeded. You can learn more about rate limits here https://stripe.com/docs/rate-limits. (injected by stripefake)")
	case status >= 500:
		return errBody("api_error", "", "", fmt.Sprintf("An unknown error occurred (HTTP %d injected by stripefake).", status))
	default:
		return errBody("invalid_request_error", "", "", fmt.Sprintf("Request failed (HTTP %d injected by stripefake).", status))
	}
}

// v2InjectedError is the v2 body of a FailThin failure.
func v2InjectedError(status int) []byte {
	msg := fmt.Sprintf("Request failed (HTTP %d injected by stripefake).", status)
	switch {
	case status == http.StatusNotFound:
		return v2ErrBody("not_found", "not_found", msg)
	case status == http.StatusTooManyRequests:
		return v2ErrBody("rate_limit", "rate_limit", msg)
	case status >= 500:
		return v2ErrBody("api_error", "internal_error", msg)
	default:
		return v2ErrBody("invalid_request_error", "invalid_request", msg)
	}
}

func isJSONObject(b []byte) bool {
	return json.Valid(b) && bytes.HasPrefix(bytes.TrimLeft(b, " \t\r\n"), []byte("{"))
}

// checkThin checks full is a JSON object whose id and type, if present,
// are id and typ.
func checkThin(id, typ string, full []byte) error {
	var m map[string]json.RawMessage
	if !isJSONObject(full) || json.Unmarshal(full, &m) != nil {
		return fmt.Errorf("body is not a JSON object")
	}
	for field, want := range map[string]string{"id": id, "type": typ} {
		raw, ok := m[field]
		if !ok {
			continue
		}
		var got string
		if err := json.Unmarshal(raw, &got); err != nil || got != want {
			return fmt.Errorf("body has %s %s, want %q", field, raw, want)
		}
	}
	return nil
}
