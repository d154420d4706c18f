package testbed

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/web"
)

// TestServiceProperty drives the whole service (simulator, manual clock) with random launches, stops,
// process exits, reservations, cancellations, node drains and clock moves, and checks after every step that
// the database and the in-memory index agree: every live sandbox holds exactly its devices as claims, no
// ended sandbox holds any, the index's claims equal the database's, and no device is booked twice.
func TestServiceProperty(t *testing.T) {
	eachFixture(t, 3, 4, Options{MaxReservationsOrg: 5}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		r := rand.New(rand.NewPCG(42, 1))
		orgs := []web.Principal{sme(), other()}
		var res []Reservation
		for step := range 150 {
			c := orgs[r.IntN(2)]
			switch op := r.IntN(12); {
			case op < 5:
				_, err := f.svc.Launch(ctx, c, LaunchInput{ListingID: f.listing.ID, GPUModel: "h100-80gb", GPUCount: 1 + r.IntN(4),
					Template: "shell", DurationMinutes: 1 + r.IntN(60)})
				if err != nil && !errors.Is(err, ErrNoCapacity) {
					t.Fatalf("step %d launch: %v", step, err)
				}
				f.svc.Wait()
			case op < 7:
				var live []Sandbox
				f.db.Where("state = ?", StateRunning).Find(&live)
				if len(live) > 0 {
					sb := live[r.IntN(len(live))]
					if r.IntN(2) == 0 {
						_ = f.sim.Exit(sb.ID, 0)
					} else if _, err := f.svc.Stop(ctx, web.Principal{OrgID: sb.OrgID, UserID: "u"}, sb.ID); err != nil {
						t.Fatalf("step %d stop: %v", step, err)
					}
					f.svc.Wait()
				}
			case op == 7:
				start := f.clk.Now().Add(time.Duration(r.IntN(120)) * time.Minute)
				rv, err := f.svc.Reserve(ctx, c, ReserveInput{ListingID: f.listing.ID, GPUCount: 1 + r.IntN(4), StartsAt: start,
					EndsAt: start.Add(time.Duration(1+r.IntN(90)) * time.Minute)})
				if err == nil {
					res = append(res, rv)
				} else if !errors.Is(err, ErrNoCapacity) && !errors.Is(err, ErrReservationLimit) {
					t.Fatalf("step %d reserve: %v", step, err)
				}
			case op == 8 && len(res) > 0:
				rv := res[0]
				res = res[1:]
				_, _ = f.svc.CancelReservation(ctx, web.Principal{OrgID: rv.OrgID}, rv.ID)
			case op == 9:
				var nodes []Node
				f.db.Find(&nodes)
				n := nodes[r.IntN(len(nodes))]
				h := []string{NodeReady, NodeReady, NodeDraining}[r.IntN(3)]
				if _, err := f.svc.SetNodeHealth(ctx, vendor(), f.pool.ID, n.ID, NodeHealthInput{Health: h}); err != nil {
					t.Fatal(err)
				}
			default:
				f.clk.Advance(time.Duration(r.IntN(20)) * time.Minute)
				f.tick(t)
			}
			checkConsistent(t, f, step)
		}
		var states []struct {
			State string
			N     int
		}
		f.db.Model(&Sandbox{}).Select("state, count(*) as n").Group("state").Scan(&states)
		t.Logf("sandboxes by state after 150 steps: %v, reservations made: %d", states, len(res))
	})
}

func checkConsistent(t *testing.T, f *fixture, step int) {
	t.Helper()
	var boxes []Sandbox
	var claims []DeviceClaim
	f.db.Find(&boxes)
	f.db.Find(&claims)
	bySandbox := map[string][]string{}
	for _, c := range claims {
		bySandbox[c.SandboxID] = append(bySandbox[c.SandboxID], c.DeviceID)
	}
	for _, sb := range boxes {
		var want []string
		if !sb.Terminal() && sb.State != StateRequested {
			for _, d := range sb.DeviceList() {
				want = append(want, d.ID)
			}
		}
		got := bySandbox[sb.ID]
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(want, got) {
			t.Fatalf("step %d: sandbox %s (%s) devices %v, claims %v", step, sb.ID, sb.State, want, got)
		}
	}
	idx := f.svc.index().p.Claimed()
	if len(idx) != len(claims) {
		t.Fatalf("step %d: index holds %d claims, database %d", step, len(idx), len(claims))
	}
	for _, c := range claims {
		if idx[c.DeviceID] != c.SandboxID {
			t.Fatalf("step %d: device %s: index says %q, database %q", step, c.DeviceID, idx[c.DeviceID], c.SandboxID)
		}
	}
}
