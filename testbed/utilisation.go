package testbed

import (
	"context"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tamarack-ai/tamarack/platform/dayrange"
	"github.com/tamarack-ai/tamarack/platform/openapi"
	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/web"
)

// Pool utilisation for charts: per calendar day of the viewer's zone (tz; UTC when absent), the device time sandboxes held against the device time the pools'
// nodes offered. Both come from the testbed's own records (sandbox start and end as the backend observed them,
// nodes and their devices), in integer device-milliseconds.

// UtilisationDay is one day of one or more pools.
type UtilisationDay struct {
	Day         string `json:"day"`
	UsedMs      int64  `json:"used_device_ms"`      // device-milliseconds held by sandboxes
	AvailableMs int64  `json:"available_device_ms"` // device-milliseconds the nodes offered (from each node's registration)
}

// Utilisation is the answer of GET /utilisation.
type Utilisation struct {
	From    string           `json:"from"`
	To      string           `json:"to"`
	PoolIDs []string         `json:"pool_ids"`
	Days    []UtilisationDay `json:"days"`
}

// overlapMs is the length of [a0, a1) ∩ [b0, b1) in milliseconds.
func overlapMs(a0, a1, b0, b1 int64) int64 {
	lo, hi := max(a0, b0), min(a1, b1)
	if hi <= lo {
		return 0
	}
	return hi - lo
}

// PoolUtilisation aggregates the pools the caller may see: staff all (or poolID), a vendor its own (or poolID
// if it owns it). Anyone else, or a pool the caller does not own, gets pool_not_found.
func (s *Service) PoolUtilisation(ctx context.Context, c web.Principal, poolID string, r dayrange.Range) (Utilisation, error) {
	out := Utilisation{From: r.From.Format("2006-01-02"), To: r.To.Format("2006-01-02"), PoolIDs: []string{}, Days: []UtilisationDay{}}
	db := s.db.WithContext(ctx)
	var err error
	switch {
	case c.Staff:
		out.PoolIDs, err = everyPoolID(db, poolID) // staff see the programme's pools
	case c.OrgID == "":
		return out, ErrPoolNotFound
	default:
		out.PoolIDs, err = vendorPoolIDs(db, c.OrgID, poolID)
	}
	if err != nil {
		return out, err
	}
	if poolID != "" && len(out.PoolIDs) == 0 {
		return out, fmt.Errorf("utilisation of %s: %w", poolID, ErrPoolNotFound)
	}
	// Device time is counted in device-milliseconds, so the span arithmetic is in Unix milliseconds.
	start, end := r.Start().UnixMilli(), r.End().UnixMilli()
	now := s.clock.Now().UnixMilli()
	end = min(end, max(now, start))
	bounds := r.Bounds()
	for _, d := range r.Days() {
		out.Days = append(out.Days, UtilisationDay{Day: d})
	}
	if len(out.PoolIDs) == 0 {
		return out, nil
	}
	add := func(a0, a1, weight int64, used bool) {
		for i := range out.Days {
			ms := overlapMs(a0, a1, bounds[i].UnixMilli(), min(bounds[i+1].UnixMilli(), end)) * weight
			if used {
				out.Days[i].UsedMs += ms
			} else {
				out.Days[i].AvailableMs += ms
			}
		}
	}
	// Available: each node's devices from its registration on.
	nodes, err := poolNodeDevices(db, out.PoolIDs)
	if err != nil {
		return out, err
	}
	for _, n := range nodes {
		add(n.CreatedAt.UnixMilli(), end, n.Devices, false)
	}
	// Used: each sandbox that started, from its start to its end (or now while it runs).
	sbs, err := startedSandboxesIn(db, out.PoolIDs, time.UnixMilli(start), time.UnixMilli(end))
	if err != nil {
		return out, err
	}
	for _, sb := range sbs {
		begun := sb.StartedAt.UnixMilli() // set: startedSandboxesIn lists started ones only
		var stop int64
		switch {
		case sb.EndedAt != nil:
			stop = sb.EndedAt.UnixMilli()
		case sb.Terminal():
			stop = max(orZero(sb.UsageEndAt).UnixMilli(), begun)
		default:
			stop = now
		}
		add(begun, stop, int64(max(sb.GPUCount, 1)), true)
	}
	return out, nil
}

func (h handler) utilisation(c *fiber.Ctx) error {
	r, err := dayrange.Parse(c.Query("from"), c.Query("to"), c.Query("tz"), h.svc.clock.Now())
	if err != nil {
		return err
	}
	cl := callerOf(c)
	if !cl.Staff && cl.OrgKind != web.OrgVendor {
		return problem.ErrForbidden.WithDetailMsg("problem.forbidden.utilisation", nil)
	}
	u, err := h.svc.PoolUtilisation(c.UserContext(), cl, c.Query("pool_id"), r)
	if err != nil {
		return err
	}
	return c.JSON(u)
}

func (s *Service) utilisationRoutes(r fiber.Router) {
	r.Get("/utilisation", web.RequireAuth, handler{svc: s}.utilisation)
}

func utilisationOps(d *openapi.Doc) {
	d.Add(openapi.Op{Method: "GET", Path: "/api/v1/testbed/utilisation", Summary: "Pool utilisation per calendar day of tz (default UTC): device time used by sandboxes against device time offered (vendors: their pools; staff: all)",
		Tag: "testbed", Auth: "vendor member or staff", Response: Utilisation{}, Problems: []string{"pool_not_found"},
		Query: []openapi.Param{{Name: "pool_id", Type: "string"}, {Name: "from", Type: "string", Description: "yyyy-mm-dd, inclusive (default: 29 days before to)"},
			{Name: "to", Type: "string", Description: "yyyy-mm-dd, inclusive (default: today in tz); at most 366 days"},
			{Name: "tz", Type: "string", Description: "IANA time zone whose calendar days the chart counts, e.g. America/Toronto (default: UTC)"}}})
}
