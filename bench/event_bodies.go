package bench

import (
	"fmt"
	"math/rand/v2"
)

// The builders below make Stripe-shaped events (the fields and nesting of
// the real objects, trimmed) with unicode names and metadata. Each returns
// an event whose id and created are placeholders.

// snapshotBuilders make the 1-4 KB snapshot events, in equal shares.
var snapshotBuilders = []func(*rand.Rand) obj{
	paymentIntentSucceeded,
	paymentIntentFailed,
	func(r *rand.Rand) obj { return invoiceEvent(r, "invoice.paid", 1+r.IntN(2)) },
	func(r *rand.Rand) obj { return invoiceEvent(r, "invoice.payment_failed", 1) },
	chargeRefunded,
	subscriptionUpdated,
	checkoutSessionCompleted,
	customerCreated,
}

const apiVersion = "2025-08-27.basil"

var (
	names = []string{
		"Zoë Ångström", "José Muñoz", "佐藤 花子", "Дмитрий Иванов", "Σωκράτης Παππάς",
		"محمد العلي", "Øyvind Ærø", "Łukasz Żółć", "Nguyễn Văn An", "김민준", "François Lefèvre",
		"Ólafur Þórsson", "Ayşe Yılmaz", "Đorđe Šćepanović", "Renée O'Brien", "田中 太郎",
	}
	cities = []string{
		"München", "Zürich", "東京", "São Paulo", "Kraków", "Reykjavík", "Москва", "İstanbul",
		"Malmö", "Montréal", "Thessaloníki", "Hà Nội",
	}
	streets = []string{"Königstraße 12", "Rua das Flores 7", "ul. Długa 44", "Calle Mayor 3, 2º", "Hauptstraße 1"}
	notes   = []string{
		"Geschenk für Oma 🎁", "entrega rápida ✓", "請在週末送達", "без сдачи", "merci beaucoup 🙏",
		"Rückruf erwünscht", "gift wrap: ✨ yes ✨", "oferta de verão ☀️",
	}
	products = []string{
		"Pro plan (monthly)", "Équipe — annual", "Starter ✦", "Enterprise seat", "Add-on: SMS pack",
		"Premium Support 24/7", "Speicherplatz 1 TB", "ライセンス追加",
	}
	currencies = []string{"eur", "usd", "gbp", "jpy", "chf", "sek", "pln", "brl"}
)

const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// sid returns a Stripe-like object id: prefix_ and 24 letters and digits.
func sid(r *rand.Rand, prefix string) string {
	b := make([]byte, 24)
	for i := range b {
		b[i] = alnum[r.IntN(len(alnum))]
	}
	return prefix + "_" + string(b)
}

func pick(r *rand.Rand, s []string) string { return s[r.IntN(len(s))] }

func ts(r *rand.Rand) int64 { return 1_760_000_000 + r.Int64N(10_000_000) }

func metadata(r *rand.Rand) obj {
	m := obj{{"order_id", fmt.Sprintf("ORD-%06d", r.IntN(1_000_000))}}
	for i := range r.IntN(5) {
		m = append(m, kv{fmt.Sprintf("note_%d", i), pick(r, notes)})
	}
	return append(m, kv{"customer_name", pick(r, names)})
}

func address(r *rand.Rand) obj {
	return obj{
		{"city", pick(r, cities)}, {"country", pick(r, []string{"DE", "FR", "JP", "BR", "PL", "IS", "CH"})},
		{"line1", pick(r, streets)}, {"line2", nil}, {"postal_code", fmt.Sprintf("%05d", r.IntN(100000))},
		{"state", nil},
	}
}

// envelope wraps a data object in a snapshot event.
func envelope(r *rand.Rand, typ string, object, previous obj) obj {
	data := obj{{"object", object}}
	if previous != nil {
		data = append(data, kv{"previous_attributes", previous})
	}
	var idem any
	if r.IntN(2) == 0 {
		idem = fmt.Sprintf("%08x-%04x-4%03x-a%03x-%012x", r.Uint32(), r.IntN(1<<16), r.IntN(1<<12), r.IntN(1<<12), r.Int64N(1<<48))
	}
	return obj{
		{"id", idMark},
		{"object", "event"},
		{"api_version", apiVersion},
		{"created", createdMark[1 : len(createdMark)-1]},
		{"data", data},
		{"livemode", false},
		{"pending_webhooks", 1 + r.IntN(3)},
		{"request", obj{{"id", sid(r, "req")}, {"idempotency_key", idem}}},
		{"type", typ},
	}
}

func card(r *rand.Rand) obj {
	return obj{
		{"brand", pick(r, []string{"visa", "mastercard", "amex"})},
		{"checks", obj{{"address_line1_check", "pass"}, {"address_postal_code_check", "pass"}, {"cvc_check", "pass"}}},
		{"country", "DE"}, {"exp_month", 1 + r.IntN(12)}, {"exp_year", 2027 + r.IntN(5)},
		{"fingerprint", sid(r, "fp")[3:19]}, {"funding", "credit"}, {"last4", fmt.Sprintf("%04d", r.IntN(10000))},
		{"network", "visa"}, {"three_d_secure", nil}, {"wallet", nil},
	}
}

func paymentIntent(r *rand.Rand, status string) obj {
	amount := 100 + r.IntN(500_000)
	return obj{
		{"id", sid(r, "pi")}, {"object", "payment_intent"},
		{"amount", amount}, {"amount_capturable", 0}, {"amount_received", amount},
		{"application", nil}, {"application_fee_amount", nil},
		{"automatic_payment_methods", obj{{"allow_redirects", "always"}, {"enabled", true}}},
		{"canceled_at", nil}, {"cancellation_reason", nil}, {"capture_method", "automatic"},
		{"client_secret", sid(r, "pi") + "_secret_" + sid(r, "x")[2:]},
		{"confirmation_method", "automatic"}, {"created", ts(r)}, {"currency", pick(r, currencies)},
		{"customer", sid(r, "cus")}, {"description", pick(r, products) + " — " + pick(r, names)},
		{"last_payment_error", nil}, {"latest_charge", sid(r, "ch")}, {"livemode", false},
		{"metadata", metadata(r)}, {"next_action", nil}, {"on_behalf_of", nil},
		{"payment_method", sid(r, "pm")},
		{"payment_method_options", obj{{"card", obj{{"installments", nil}, {"mandate_options", nil}, {"network", nil}, {"request_three_d_secure", "automatic"}}}}},
		{"payment_method_types", []string{"card", "sepa_debit"}},
		{"receipt_email", "kunde+" + fmt.Sprint(r.IntN(9999)) + "@example.com"},
		{"review", nil}, {"setup_future_usage", nil},
		{"shipping", obj{{"address", address(r)}, {"carrier", nil}, {"name", pick(r, names)}, {"phone", nil}, {"tracking_number", nil}}},
		{"statement_descriptor", nil}, {"statement_descriptor_suffix", nil}, {"status", status},
		{"transfer_data", nil}, {"transfer_group", nil},
	}
}

func paymentIntentSucceeded(r *rand.Rand) obj {
	return envelope(r, "payment_intent.succeeded", paymentIntent(r, "succeeded"), nil)
}

func paymentIntentFailed(r *rand.Rand) obj {
	pi := paymentIntent(r, "requires_payment_method")
	for i := range pi {
		if pi[i].k == "last_payment_error" {
			pi[i].v = obj{
				{"charge", sid(r, "ch")}, {"code", "card_declined"}, {"decline_code", "insufficient_funds"},
				{"doc_url", "https://stripe.com/docs/error-codes/card-declined"},
				{"message", "Your card has insufficient funds."},
				{"payment_method", obj{{"id", sid(r, "pm")}, {"object", "payment_method"}, {"billing_details", obj{{"address", address(r)}, {"email", nil}, {"name", pick(r, names)}, {"phone", nil}}}, {"card", card(r)}, {"type", "card"}}},
				{"type", "card_error"},
			}
		}
	}
	return envelope(r, "payment_intent.payment_failed", pi, nil)
}

func invoiceLine(r *rand.Rand, invoice string, cur string) obj {
	amount := 100 + r.IntN(90_000)
	return obj{
		{"id", sid(r, "il")}, {"object", "line_item"}, {"amount", amount}, {"currency", cur},
		{"description", fmt.Sprintf("%d × %s", 1+r.IntN(20), pick(r, products))},
		{"discount_amounts", []any{}}, {"discountable", true}, {"discounts", []any{}},
		{"invoice", invoice}, {"livemode", false}, {"metadata", obj{{"seat_owner", pick(r, names)}}},
		{"parent", obj{{"subscription_item_details", obj{{"subscription", sid(r, "sub")}, {"subscription_item", sid(r, "si")}}}, {"type", "subscription_item_details"}}},
		{"period", obj{{"end", ts(r)}, {"start", ts(r)}}},
		{"pricing", obj{{"price_details", obj{{"price", sid(r, "price")}, {"product", sid(r, "prod")}}}, {"type", "price_details"}, {"unit_amount_decimal", fmt.Sprint(amount)}}},
		{"quantity", 1 + r.IntN(20)}, {"taxes", []any{}},
	}
}

// shortInvoiceLine is a trimmed line item, about 310 bytes pretty-printed
// in an event, for invoices with hundreds of lines.
func shortInvoiceLine(r *rand.Rand, _ string, cur string) obj {
	quantity := 1 + r.IntN(9)
	return obj{
		{"id", sid(r, "il")}, {"object", "line_item"}, {"amount", 1000 + r.IntN(9000)}, {"currency", cur},
		{"description", fmt.Sprintf("%d × %s", quantity, pick(r, products))},
		{"price", sid(r, "price")}, {"quantity", quantity},
	}
}

func invoice(r *rand.Rand, status string, lines int) obj {
	return invoiceOf(r, status, lines, invoiceLine)
}

// invoiceOf makes an invoice of lines lines, each made by line.
func invoiceOf(r *rand.Rand, status string, lines int, line func(r *rand.Rand, invoice, cur string) obj) obj {
	id, cur := sid(r, "in"), pick(r, currencies)
	items := make([]any, lines)
	total := 0
	for i := range items {
		l := line(r, id, cur)
		total += l.get("amount").(int)
		items[i] = l
	}
	paid := 0
	if status == "paid" {
		paid = total
	}
	return obj{
		{"id", id}, {"object", "invoice"}, {"account_country", "DE"}, {"account_name", "Bäckerei Müller GmbH"},
		{"amount_due", total}, {"amount_paid", paid}, {"amount_remaining", total - paid},
		{"attempt_count", 1}, {"attempted", true}, {"billing_reason", "subscription_cycle"},
		{"collection_method", "charge_automatically"}, {"created", ts(r)}, {"currency", cur},
		{"customer", sid(r, "cus")}, {"customer_address", address(r)},
		{"customer_email", "rechnung@example.com"}, {"customer_name", pick(r, names)},
		{"description", pick(r, notes)}, {"hosted_invoice_url", "https://invoice.stripe.com/i/acct_1Nv0FGQ9RKHgCVdK/test_" + sid(r, "x")[2:]},
		{"lines", obj{{"object", "list"}, {"data", items}, {"has_more", false}, {"total_count", lines}, {"url", "/v1/invoices/" + id + "/lines"}}},
		{"livemode", false}, {"metadata", metadata(r)}, {"number", fmt.Sprintf("A1B2C3-%04d", r.IntN(10000))},
		{"period_end", ts(r)}, {"period_start", ts(r)}, {"status", status},
		{"status_transitions", obj{{"finalized_at", ts(r)}, {"marked_uncollectible_at", nil}, {"paid_at", ts(r)}, {"voided_at", nil}}},
		{"subtotal", total}, {"total", total},
	}
}

func invoiceEvent(r *rand.Rand, typ string, lines int) obj {
	status := "paid"
	if typ == "invoice.payment_failed" {
		status = "open"
	}
	return envelope(r, typ, invoice(r, status, lines), nil)
}

// largeInvoicePaid makes a 30-80 KB invoice.paid with 100-250 trimmed lines.
func largeInvoicePaid(r *rand.Rand) obj {
	return envelope(r, "invoice.paid", invoiceOf(r, "paid", 100+r.IntN(151), shortInvoiceLine), nil)
}

func chargeRefunded(r *rand.Rand) obj {
	amount := 500 + r.IntN(200_000)
	id := sid(r, "ch")
	refund := obj{
		{"id", sid(r, "re")}, {"object", "refund"}, {"amount", amount}, {"charge", id},
		{"created", ts(r)}, {"currency", "eur"}, {"metadata", obj{{"grund", "Rücksendung — defekt"}}},
		{"reason", "requested_by_customer"}, {"status", "succeeded"},
	}
	charge := obj{
		{"id", id}, {"object", "charge"}, {"amount", amount}, {"amount_captured", amount}, {"amount_refunded", amount},
		{"balance_transaction", sid(r, "txn")},
		{"billing_details", obj{{"address", address(r)}, {"email", "kunde@example.com"}, {"name", pick(r, names)}, {"phone", nil}}},
		{"captured", true}, {"created", ts(r)}, {"currency", "eur"}, {"customer", sid(r, "cus")},
		{"description", pick(r, products)}, {"disputed", false}, {"livemode", false}, {"metadata", metadata(r)},
		{"outcome", obj{{"network_status", "approved_by_network"}, {"reason", nil}, {"risk_level", "normal"}, {"risk_score", r.IntN(100)}, {"seller_message", "Payment complete."}, {"type", "authorized"}}},
		{"paid", true}, {"payment_intent", sid(r, "pi")}, {"payment_method", sid(r, "pm")},
		{"payment_method_details", obj{{"card", card(r)}, {"type", "card"}}},
		{"receipt_url", "https://pay.stripe.com/receipts/payment/" + sid(r, "x")[2:]},
		{"refunded", true},
		{"refunds", obj{{"object", "list"}, {"data", []any{refund}}, {"has_more", false}, {"total_count", 1}, {"url", "/v1/charges/" + id + "/refunds"}}},
		{"status", "succeeded"},
	}
	return envelope(r, "charge.refunded", charge, obj{{"amount_refunded", 0}, {"refunded", false}})
}

func subscriptionUpdated(r *rand.Rand) obj {
	id := sid(r, "sub")
	var items []any
	for range 1 + r.IntN(3) {
		items = append(items, obj{
			{"id", sid(r, "si")}, {"object", "subscription_item"}, {"created", ts(r)}, {"metadata", obj{}},
			{"price", obj{{"id", sid(r, "price")}, {"object", "price"}, {"active", true}, {"currency", "eur"}, {"nickname", pick(r, products)}, {"product", sid(r, "prod")}, {"recurring", obj{{"interval", "month"}, {"interval_count", 1}, {"usage_type", "licensed"}}}, {"type", "recurring"}, {"unit_amount", 100 * (1 + r.IntN(500))}}},
			{"quantity", 1 + r.IntN(50)}, {"subscription", id},
		})
	}
	sub := obj{
		{"id", id}, {"object", "subscription"}, {"billing_cycle_anchor", ts(r)}, {"cancel_at", nil},
		{"cancel_at_period_end", false}, {"collection_method", "charge_automatically"}, {"created", ts(r)},
		{"currency", "eur"}, {"customer", sid(r, "cus")}, {"default_payment_method", sid(r, "pm")},
		{"description", pick(r, notes)},
		{"items", obj{{"object", "list"}, {"data", items}, {"has_more", false}, {"total_count", len(items)}, {"url", "/v1/subscription_items?subscription=" + id}}},
		{"latest_invoice", sid(r, "in")}, {"livemode", false}, {"metadata", metadata(r)},
		{"start_date", ts(r)}, {"status", "active"}, {"trial_end", nil}, {"trial_start", nil},
	}
	return envelope(r, "customer.subscription.updated", sub, obj{{"cancel_at_period_end", true}, {"status", "trialing"}})
}

func checkoutSessionCompleted(r *rand.Rand) obj {
	amount := 100 + r.IntN(300_000)
	s := obj{
		{"id", sid(r, "cs_test")}, {"object", "checkout.session"}, {"amount_subtotal", amount}, {"amount_total", amount},
		{"billing_address_collection", "required"}, {"cancel_url", "https://shop.example.com/warenkorb"},
		{"client_reference_id", fmt.Sprintf("kunde-%d", r.IntN(1_000_000))}, {"created", ts(r)}, {"currency", "eur"},
		{"customer", sid(r, "cus")}, {"customer_creation", "if_required"},
		{"customer_details", obj{{"address", address(r)}, {"email", "käufer@example.com"}, {"name", pick(r, names)}, {"phone", nil}, {"tax_exempt", "none"}, {"tax_ids", []any{}}}},
		{"expires_at", ts(r)}, {"livemode", false}, {"locale", pick(r, []string{"de", "fr", "ja", "pt-BR", "pl"})},
		{"metadata", metadata(r)}, {"mode", "payment"}, {"payment_intent", sid(r, "pi")},
		{"payment_method_types", []string{"card", "klarna", "sofort"}}, {"payment_status", "paid"},
		{"shipping_details", obj{{"address", address(r)}, {"name", pick(r, names)}}},
		{"status", "complete"}, {"submit_type", "pay"}, {"success_url", "https://shop.example.com/danke?session={CHECKOUT_SESSION_ID}"},
		{"total_details", obj{{"amount_discount", 0}, {"amount_shipping", 490}, {"amount_tax", amount / 5}}},
	}
	return envelope(r, "checkout.session.completed", s, nil)
}

func customerCreated(r *rand.Rand) obj {
	c := obj{
		{"id", sid(r, "cus")}, {"object", "customer"}, {"address", address(r)}, {"balance", 0}, {"created", ts(r)},
		{"currency", nil}, {"default_source", nil}, {"delinquent", false}, {"description", pick(r, notes)},
		{"email", "neukunde@example.com"},
		{"invoice_settings", obj{{"custom_fields", nil}, {"default_payment_method", nil}, {"footer", nil}, {"rendering_options", nil}}},
		{"livemode", false}, {"metadata", metadata(r)}, {"name", pick(r, names)}, {"phone", "+49 30 1234567"},
		{"preferred_locales", []string{"de-DE", "en"}}, {"shipping", nil}, {"tax_exempt", "none"},
	}
	return envelope(r, "customer.created", c, nil)
}

// thinEvent makes a thin event: object v2.core.event, created in RFC 3339,
// the account in context.
func thinEvent(r *rand.Rand) obj {
	meter := sid(r, "mtr_test")
	return obj{
		{"id", idMark},
		{"object", "v2.core.event"},
		{"type", "v1.billing.meter.error_report_triggered"},
		{"livemode", false},
		{"created", createdMark[1 : len(createdMark)-1]},
		{"context", sid(r, "acct")},
		{"related_object", obj{{"id", meter}, {"type", "billing.meter"}, {"url", "/v1/billing/meters/" + meter}}},
		{"reason", obj{{"type", "request"}, {"request", obj{{"id", sid(r, "req")}, {"idempotency_key", nil}}}}},
	}
}
