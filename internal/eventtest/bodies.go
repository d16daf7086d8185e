// Package eventtest holds Stripe event bodies shared by the tests and
// benchmarks of several packages (the parser's in event/, the receiver's),
// so that their numbers compare.
package eventtest

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// SnapshotBody is a payment_intent.succeeded event pretty-printed the
// way Stripe sends it (about 3 KB). Nested objects carry their own id,
// object, type and created keys, which must not be mistaken for the event's.
const SnapshotBody = `{
  "id": "evt_3PqRsT2eZvKYlo2C1aBcDeFg",
  "object": "event",
  "api_version": "2024-06-20",
  "created": 1726554052,
  "data": {
    "object": {
      "id": "pi_3PqRsT2eZvKYlo2C1xYz9876",
      "object": "payment_intent",
      "amount": 4900,
      "amount_capturable": 0,
      "amount_received": 4900,
      "application": null,
      "application_fee_amount": null,
      "automatic_payment_methods": {
        "allow_redirects": "always",
        "enabled": true
      },
      "canceled_at": null,
      "cancellation_reason": null,
      "capture_method": "automatic_async",
      "client_secret": "pi_3PqRsT2eZvKYlo2C1xYz9876_secret_Vb7kQ2mN8pR4sT6uW1xY3zA5c",
      "confirmation_method": "automatic",
      "created": 1726554049,
      "currency": "eur",
      "customer": "cus_QhVq2mXk8pLr3N",
      "description": "Abonnement \"Pro\" \u2014 September",
      "invoice": "in_1PqRsS2eZvKYlo2CaBcD1234",
      "last_payment_error": null,
      "latest_charge": "ch_3PqRsT2eZvKYlo2C1qWeRtYu",
      "livemode": false,
      "metadata": {
        "order_id": "6735",
        "customer_name": "Jürgen Müller-Lüdenscheidt",
        "shipping_note": "Grüße aus Köln — 東京へ 🚀",
        "escaped": "line one\nline two\t\"quoted\" \\ back\/slash \u00e9\ud83d\ude00"
      },
      "next_action": null,
      "on_behalf_of": null,
      "payment_method": "pm_1PqRsR2eZvKYlo2CkLmNoPqR",
      "payment_method_configuration_details": {
        "id": "pmc_1NvBm82eZvKYlo2CxXUmZ0yP",
        "parent": null
      },
      "payment_method_types": [
        "card",
        "link",
        "sepa_debit"
      ],
      "processing": null,
      "receipt_email": "juergen@example.de",
      "review": null,
      "setup_future_usage": "off_session",
      "source": null,
      "statement_descriptor": null,
      "statement_descriptor_suffix": "PRO SEPT",
      "status": "succeeded",
      "transfer_data": null,
      "transfer_group": null,
      "charges": {
        "object": "list",
        "data": [
          {
            "id": "ch_3PqRsT2eZvKYlo2C1qWeRtYu",
            "object": "charge",
            "amount": 4900,
            "balance_transaction": "txn_3PqRsT2eZvKYlo2C1AsDfGhJ",
            "captured": true,
            "created": 1726554051,
            "fraud_details": {},
            "outcome": {
              "network_status": "approved_by_network",
              "reason": null,
              "risk_level": "normal",
              "risk_score": 12,
              "seller_message": "Payment complete.",
              "type": "authorized"
            },
            "paid": true,
            "refunded": false,
            "score": -0.25e-1
          }
        ],
        "has_more": false,
        "total_count": 1,
        "url": "/v1/charges?payment_intent=pi_3PqRsT2eZvKYlo2C1xYz9876"
      }
    },
    "previous_attributes": null
  },
  "livemode": false,
  "pending_webhooks": 2,
  "request": {
    "id": "req_nm2K6zUqCfS8XJ",
    "idempotency_key": "a3c1e0f2-7b8d-4c5e-9f6a-1b2c3d4e5f60"
  },
  "type": "payment_intent.succeeded"
}
`

// LargeInvoice returns a pretty-printed invoice.paid event of at least
// size bytes: an invoice with as many line items as it takes.
func LargeInvoice(size int) []byte {
	var lines bytes.Buffer
	for n := 0; ; n++ {
		if n > 0 {
			lines.WriteByte(',')
		}
		fmt.Fprintf(&lines, `{"id":"il_1PqRsS2eZvKYlo2C%08d","object":"line_item","amount":%d,"amount_excluding_tax":%d,"currency":"eur",`+
			`"description":"%d × Seat (Tier \"Pro\") — Köln office","discount_amounts":[],"discountable":true,"discounts":[],`+
			`"invoice":"in_1PqRsS2eZvKYlo2CaBcD1234","livemode":false,"metadata":{"seat_owner":"user_%d@example.de","cost_center":"CC-%04d"},`+
			`"period":{"end":1729146052,"start":1726554052},"plan":{"id":"price_1Nv0FGQ9RKHgCVdKpro","object":"plan","active":true,`+
			`"aggregate_usage":null,"amount":1900,"amount_decimal":"1900","billing_scheme":"per_unit","created":1696000000,"currency":"eur",`+
			`"interval":"month","interval_count":1,"livemode":false,"metadata":{},"nickname":"Pro monthly","product":"prod_OiQxY2eZvKYlo2",`+
			`"tiers_mode":null,"transform_usage":null,"trial_period_days":null,"usage_type":"licensed"},"price":{"id":"price_1Nv0FGQ9RKHgCVdKpro",`+
			`"object":"price","active":true,"billing_scheme":"per_unit","created":1696000000,"currency":"eur","custom_unit_amount":null,`+
			`"livemode":false,"lookup_key":null,"metadata":{},"nickname":"Pro monthly","product":"prod_OiQxY2eZvKYlo2",`+
			`"recurring":{"aggregate_usage":null,"interval":"month","interval_count":1,"meter":null,"trial_period_days":null,"usage_type":"licensed"},`+
			`"tax_behavior":"exclusive","tiers_mode":null,"transform_quantity":null,"type":"recurring","unit_amount":1900,"unit_amount_decimal":"1900"},`+
			`"proration":false,"proration_details":{"credited_items":null},"quantity":%d,"subscription":"sub_1PqRsS2eZvKYlo2CdEf5678",`+
			`"subscription_item":"si_QhVq2mXk8pLr%02d","tax_amounts":[{"amount":%d,"inclusive":false,"tax_rate":"txr_1Nv0FGQ9RKHgCVdK19",`+
			`"taxability_reason":null,"taxable_amount":%d}],"tax_rates":[],"type":"subscription","unit_amount_excluding_tax":"1900"}`,
			n, 1900*(n%5+1), 1900*(n%5+1), n%5+1, n, n, n%5+1, n%100, 361*(n%5+1), 1900*(n%5+1))
		if lines.Len() > size*53/100 {
			break
		}
	}
	compact := `{"id":"evt_1PqRsU2eZvKYlo2CGhIjKlMn","object":"event","api_version":"2024-06-20","created":1726554053,` +
		`"data":{"object":{"id":"in_1PqRsS2eZvKYlo2CaBcD1234","object":"invoice","account_country":"DE","account_name":"Müller & Söhne GmbH",` +
		`"amount_due":98800,"amount_paid":98800,"amount_remaining":0,"attempt_count":1,"attempted":true,"billing_reason":"subscription_cycle",` +
		`"collection_method":"charge_automatically","created":1726554050,"currency":"eur","customer":"cus_QhVq2mXk8pLr3N",` +
		`"customer_address":{"city":"Köln","country":"DE","line1":"Hohe Straße 12","line2":null,"postal_code":"50667","state":null},` +
		`"customer_email":"billing@example.de","customer_name":"Müller & Söhne GmbH","lines":{"object":"list","data":[` + lines.String() +
		`],"has_more":false,"total_count":` + fmt.Sprint(bytes.Count(lines.Bytes(), []byte(`"object":"line_item"`))) +
		`,"url":"/v1/invoices/in_1PqRsS2eZvKYlo2CaBcD1234/lines"},"livemode":false,"metadata":{"Bestellnummer":"6735","notiz":"Grüße 🚀"},` +
		`"paid":true,"status":"paid","subtotal":98800,"total":98800}},"livemode":false,"pending_webhooks":1,` +
		`"request":{"id":null,"idempotency_key":null},"type":"invoice.paid"}`
	var out bytes.Buffer
	if err := json.Indent(&out, []byte(compact), "", "  "); err != nil {
		panic(err)
	}
	out.WriteByte('\n')
	return out.Bytes()
}
