package testbed

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/tamarack-ai/tamarack/services/events"
)

// lostHolds reserves (as billing may have done) and then fails as if no reply came in time.
type lostHolds struct{ sandbox string }

func (h *lostHolds) Hold(_ context.Context, req events.HoldRequestV1) (events.HoldReplyV1, error) {
	h.sandbox = req.SandboxID
	return events.HoldReplyV1{}, fmt.Errorf("hold: %w", ErrBillingUnavailable)
}

// TestLaunchWithoutHoldReplyAnnouncesFailure: when billing's answer to a hold is unknown (no reply in time,
// billing failing), the launch is refused and the sandbox is announced failed, so that a hold billing did
// place is released; otherwise it stayed held for good (no sandbox, hence no end event).
func TestLaunchWithoutHoldReplyAnnouncesFailure(t *testing.T) {
	eachFixture(t, 1, 8, Options{}, func(t *testing.T, f *fixture) {
		h := &lostHolds{}
		f.svc.holds = h
		_, err := f.svc.Launch(context.Background(), sme(), LaunchInput{ListingID: f.listing.ID, GPUModel: "h100-80gb",
			GPUCount: 1, Template: "shell", DurationMinutes: 30})
		if p := asProblem(t, err); p.Code != "billing_unavailable" {
			t.Fatalf("launch: %v", err)
		}
		var found bool
		for _, r := range outbox(t, f.db, events.SandboxSubject(StateFailed).Name) {
			var ev events.SandboxChangedV1
			if err := json.Unmarshal([]byte(r.Payload), &ev); err != nil {
				t.Fatal(err)
			}
			if r.ID == h.sandbox+"-abandoned" && ev.SandboxID == h.sandbox && ev.OrganizationID == smeOrg && ev.LastSeq == 0 && ev.State == StateFailed {
				found = true
			}
		}
		if !found {
			t.Fatalf("no sandbox.failed event for %s: %+v", h.sandbox, outbox(t, f.db, events.SandboxSubject(StateFailed).Name))
		}
	})
}
