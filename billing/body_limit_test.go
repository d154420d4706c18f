package billing

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"
	"gorm.io/gorm"
)

// Billing reads at most MaxBody of a request: a signed Stripe event of 200 KiB is processed, while one of
// 300 KiB, or a body of a few MiB, with a Content-Length or chunked, anonymous (the webhook) or signed in,
// answers 413 unread.
func TestBodiesOverTheLimitAre413(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB) {
		f := newFx(t, db, nil, withStripe("http://127.0.0.1:1")) // an ignored event calls no Stripe API
		a := newAPI(t, f)
		f.org("sme", "sme", true)

		event := func(id string, size int) []byte {
			return stripeEvent(id, "customer.created", map[string]any{"id": "cus_1", "object": "customer",
				"description": strings.Repeat("x", size)})
		}
		if code, r, pc := a.webhookPost(event("evt_200k", 200<<10), whsec, time.Now()); code != 200 || r.Outcome != "ignored" {
			t.Fatalf("a 200 KiB event: %d %+v %s", code, r, pc)
		}
		sign := func(p []byte) string {
			return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: p, Secret: whsec, Timestamp: time.Now()}).Header
		}
		over, big := event("evt_300k", 300<<10), event("evt_big", 3<<20)
		grant, _ := json.Marshal(map[string]any{"organization_id": "sme", "amount_micro": 1, "note": strings.Repeat("n", 3<<20)})
		for _, c := range []struct {
			name, path string
			as         who
			body       []byte
			hdr        []string
		}{
			{"webhook of 300 KiB", "/api/v1/billing/stripe/webhook", nobody, over, []string{"Stripe-Signature", sign(over)}},
			{"webhook of 3 MiB", "/api/v1/billing/stripe/webhook", nobody, big, []string{"Stripe-Signature", sign(big)}},
			{"grant", "/api/v1/billing/grants", staff, grant, nil},
		} {
			for _, framing := range []string{"content-length", "chunked"} {
				req, _ := http.NewRequest("POST", c.path, bytes.NewReader(c.body))
				if framing == "chunked" {
					req.Body, req.ContentLength, req.TransferEncoding = io.NopCloser(bytes.NewReader(c.body)), -1, []string{"chunked"}
				}
				req.Header.Set("Content-Type", "application/json")
				if c.as.user != "" {
					req.Header.Set("Authorization", "Bearer "+a.token(c.as))
				}
				for i := 0; i+1 < len(c.hdr); i += 2 {
					req.Header.Set(c.hdr[i], c.hdr[i+1])
				}
				res, err := a.app.Test(req, 30_000)
				must(t, err)
				var p struct{ Code string }
				_ = json.NewDecoder(res.Body).Decode(&p)
				if res.StatusCode != 413 || p.Code != "payload_too_large" {
					t.Errorf("%s, %s: %d %q", c.name, framing, res.StatusCode, p.Code)
				}
			}
		}
		var n int64
		must(t, db.Model(&Grant{}).Count(&n).Error)
		if n != 0 {
			t.Fatalf("%d grants stored from refused bodies", n)
		}
	})
}
