package placement

import (
	"slices"
	"sort"
)

// Reservations and time: what is free at a moment or over a window, counting claims until their expiry and
// reservations over their windows.

// Reserve adds or replaces (by ID) a reservation.
func (x *Index) Reserve(r Reservation) {
	x.mu.Lock()
	defer x.mu.Unlock()
	g := x.group(r.PoolID, r.GPUModel)
	g.res = slices.DeleteFunc(g.res, func(v resv) bool { return v.id == r.ID })
	g.res = append(g.res, toResv(r))
}

// Unreserve removes a reservation (by pool, model and ID).
func (x *Index) Unreserve(r Reservation) {
	x.mu.Lock()
	defer x.mu.Unlock()
	g := x.group(r.PoolID, r.GPUModel)
	g.res = slices.DeleteFunc(g.res, func(v resv) bool { return v.id == r.ID })
}

// reservedLocked sums the devices other organisations hold by reservation at any time within [from, to).
// It adds overlapping reservations even when they do not overlap each other: conservative, never unsafe.
func (g *group) reservedLocked(org string, from, to int64) int {
	n := 0
	for _, r := range g.res {
		if r.org != org && r.fromMS < to && from < r.toMS {
			n += r.count
		}
	}
	return n
}

// NextFree estimates the earliest time at or after now when r.GPUCount devices of the model could be free in
// the pool for r's duration: claims free at their expiry, reservations of others block their window. It
// counts devices pool-wide (not per node), so it is a lower bound when devices free on different nodes; 0
// when the pool has too few ready devices at all.
func (x *Index) NextFree(r Request, nowMS int64) int64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	g := x.groups[groupKey{r.PoolID, r.GPUModel}]
	if g == nil {
		return 0
	}
	_, total := x.countsLocked(g, r.GPUModel)
	if total < r.GPUCount {
		return 0
	}
	dur := r.ToMS - r.FromMS
	var exp []int64
	for _, s := range g.slots {
		if s.bucket < 0 {
			continue
		}
		for _, d := range s.node.devs {
			if d.model == r.GPUModel && d.claimed {
				exp = append(exp, d.expires)
			}
		}
	}
	slices.Sort(exp)
	cands := []int64{nowMS}
	cands = append(cands, exp...)
	for _, rv := range g.res {
		cands = append(cands, rv.toMS)
	}
	slices.Sort(cands)
	for _, t := range cands {
		if t < nowMS {
			continue
		}
		busy := len(exp) - sort.Search(len(exp), func(i int) bool { return exp[i] > t })
		if total-busy-g.reservedLocked(r.OrgID, t, t+dur) >= r.GPUCount {
			return t
		}
	}
	return 0
}

// MinFree is the fewest devices of the model free in the pool at any moment of [from, to): every claim counts
// until its expiry, every reservation (the caller's own included) over its window. It is below zero when
// reservations overbook.
func (x *Index) MinFree(pool, model string, from, to int64) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.minFreeLocked(pool, model, from, to)
}

func (x *Index) minFreeLocked(pool, model string, from, to int64) int {
	g := x.groups[groupKey{pool, model}]
	if g == nil {
		return 0
	}
	_, total := x.countsLocked(g, model)
	busyAt := func(t int64) int {
		n := 0
		for _, s := range g.slots {
			if s.bucket < 0 {
				continue
			}
			for _, d := range s.node.devs {
				if d.model == model && d.claimed && d.expires > t {
					n++
				}
			}
		}
		for _, r := range g.res {
			if r.fromMS <= t && t < r.toMS {
				n += r.count
			}
		}
		return n
	}
	// Free devices only change at a reservation's start inside the window (claims only end).
	minFree := total - busyAt(from)
	for _, r := range g.res {
		if r.fromMS > from && r.fromMS < to {
			minFree = min(minFree, total-busyAt(r.fromMS))
		}
	}
	return minFree
}

// nextWindowLocked proposes the earliest start ≥ from with count devices free for dur, trying the ends of
// claims and reservations as candidate starts; 0 when none does.
func (x *Index) nextWindowLocked(pool, model string, count int, from, dur int64) int64 {
	g := x.groups[groupKey{pool, model}]
	if g == nil {
		return 0
	}
	cands := []int64{}
	for _, s := range g.slots {
		for _, d := range s.node.devs {
			if d.claimed && d.expires > from {
				cands = append(cands, d.expires)
			}
		}
	}
	for _, r := range g.res {
		if r.toMS > from {
			cands = append(cands, r.toMS)
		}
	}
	best := int64(0)
	for _, t := range cands {
		if (best == 0 || t < best) && x.minFreeLocked(pool, model, t, t+dur) >= count {
			best = t
		}
	}
	return best
}

// SyncWindow brings the index's reservations of r's pool and model that matter from r's start on up to date
// with booked (the database's, read under its lock): those ending by r's start are kept, the others replaced
// by booked. It returns the fewest devices free during r's window (MinFree) and, when that is fewer than
// r.GPUCount, the earliest start at which r's count is free for r's duration (0: none found).
func (x *Index) SyncWindow(r Reservation, booked []Reservation) (free int, next int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	g := x.group(r.PoolID, r.GPUModel)
	kept := g.res[:0:0]
	for _, v := range g.res {
		if v.toMS <= r.FromMS {
			kept = append(kept, v)
		}
	}
	for _, b := range booked {
		kept = append(kept, toResv(b))
	}
	g.res = kept
	free = x.minFreeLocked(r.PoolID, r.GPUModel, r.FromMS, r.ToMS)
	if free >= r.GPUCount {
		return free, 0
	}
	return free, x.nextWindowLocked(r.PoolID, r.GPUModel, r.GPUCount, r.FromMS, r.ToMS-r.FromMS)
}

// Window is the span [FromMS, ToMS).
type Window struct{ FromMS, ToMS int64 }

// Availability is one pool and model's devices on ready nodes (Total) and the fewest free in each window
// asked (Free[i] over windows[i], as MinFree: below zero when reservations overbook).
type Availability struct {
	PoolID   string
	GPUModel string
	Total    int
	Free     []int
}

// Availabilities returns, for every pool and model with devices on ready nodes (only pool and only model when
// not empty), the fewest devices free over each window, all from one state of the index. In no order.
func (x *Index) Availabilities(pool, model string, windows []Window) []Availability {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []Availability
	for k, g := range x.groups {
		if (pool != "" && k.pool != pool) || (model != "" && k.model != model) {
			continue
		}
		_, total := x.countsLocked(g, k.model)
		if total == 0 {
			continue
		}
		a := Availability{PoolID: k.pool, GPUModel: k.model, Total: total, Free: make([]int, len(windows))}
		for i, w := range windows {
			a.Free[i] = x.minFreeLocked(k.pool, k.model, w.FromMS, w.ToMS)
		}
		out = append(out, a)
	}
	return out
}
