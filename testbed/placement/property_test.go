package placement

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// TestIndexProperty drives the index with random placements, releases, reservations and health changes and
// checks after every step: no device is ever booked twice, a placement is on one ready node with devices of
// the right model, and a request that fits is never refused.
func TestIndexProperty(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(seed, 7))
			x := New()
			models := []string{"h100-80gb", "l4-24gb"}
			var nodes []Node
			for n := range 12 {
				node := Node{ID: fmt.Sprintf("n%02d", n), PoolID: "p", Ready: true, CPUMillis: 16000, MemoryBytes: 64 << 30}
				var devs []Device
				per := 1 + r.IntN(8)
				for i := range per {
					d := Device{ID: fmt.Sprintf("n%02d-d%d", n, i), Idx: i, GPUModel: models[n%2]}
					if r.IntN(3) == 0 {
						d.MIG = []string{"1g.10gb", "3g.40gb"}
					}
					devs = append(devs, d)
				}
				x.AddNode(node, devs)
				nodes = append(nodes, node)
			}
			live := map[string]Request{}
			var liveIDs []string
			var res []Reservation
			now := int64(1_000_000)
			for step := range 2000 {
				switch op := r.IntN(10); {
				case op < 5:
					req := Request{PoolID: "p", GPUModel: models[r.IntN(2)], GPUCount: 1 + r.IntN(8),
						CPUMillis: int64(r.IntN(6000)), Memory: int64(r.IntN(24)) << 30, OrgID: fmt.Sprintf("o%d", r.IntN(3)),
						FromMS: now, ToMS: now + int64(1+r.IntN(100))*1000}
					if r.IntN(5) == 0 {
						req.MIGProfile = "3g.40gb"
					}
					id := fmt.Sprintf("s%d", step)
					fits := bruteFits(x, req)
					p, ok := x.Place(id, req)
					if ok != fits {
						t.Fatalf("step %d: place=%v brute force=%v for %+v", step, ok, fits, req)
					}
					if ok {
						checkPick(t, x, p, req)
						live[id] = req
						liveIDs = append(liveIDs, id)
					}
				case op < 8 && len(liveIDs) > 0:
					i := r.IntN(len(liveIDs))
					x.Release(liveIDs[i])
					delete(live, liveIDs[i])
					liveIDs = append(liveIDs[:i], liveIDs[i+1:]...)
				case op == 8:
					if len(res) > 0 && r.IntN(2) == 0 {
						x.Unreserve(res[0])
						res = res[1:]
					} else {
						rv := Reservation{ID: fmt.Sprintf("r%d", step), OrgID: fmt.Sprintf("o%d", r.IntN(3)), PoolID: "p",
							GPUModel: models[r.IntN(2)], GPUCount: 1 + r.IntN(4), FromMS: now + int64(r.IntN(50))*1000}
						rv.ToMS = rv.FromMS + int64(1+r.IntN(50))*1000
						x.Reserve(rv)
						res = append(res, rv)
					}
				default:
					n := nodes[r.IntN(len(nodes))]
					x.SetReady(n.ID, r.IntN(3) != 0) // one in three drains it
				}
				checkIndex(t, x, live)
			}
		})
	}
}

// bruteFits answers "does r fit now?" by looking at every node, ignoring the buckets.
func bruteFits(x *Index, r Request) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	g := x.groups[groupKey{r.PoolID, r.GPUModel}]
	if g == nil {
		return false
	}
	free, _ := x.countsLocked(g, r.GPUModel)
	if free-g.reservedLocked(r.OrgID, r.FromMS, r.ToMS) < r.GPUCount {
		return false
	}
	for _, n := range x.nodes {
		if !n.ready || n.cpuFree < r.CPUMillis || n.memFree < r.Memory {
			continue
		}
		c := 0
		for _, d := range n.devs {
			if d.model == r.GPUModel && !d.claimed && migOK(d, r.MIGProfile) {
				c++
			}
		}
		if c >= r.GPUCount {
			return true
		}
	}
	return false
}

func checkPick(t *testing.T, x *Index, p Pick, r Request) {
	t.Helper()
	x.mu.Lock()
	defer x.mu.Unlock()
	if len(p.Devices) != r.GPUCount {
		t.Fatalf("placed %d devices for %d", len(p.Devices), r.GPUCount)
	}
	for _, id := range p.Devices {
		d := x.devs[id]
		if d.node.id != p.NodeID || d.model != r.GPUModel || !migOK(d, r.MIGProfile) || !d.node.ready {
			t.Fatalf("device %s does not match %+v", id, r)
		}
	}
}

func checkIndex(t *testing.T, x *Index, live map[string]Request) {
	t.Helper()
	x.mu.Lock()
	defer x.mu.Unlock()
	owner := map[string]string{}
	for sb, ids := range x.claims {
		if _, ok := live[sb]; !ok {
			t.Fatalf("claim of released sandbox %s", sb)
		}
		for _, id := range ids {
			if o, dup := owner[id]; dup {
				t.Fatalf("device %s double-booked by %s and %s", id, o, sb)
			}
			owner[id] = sb
			if d := x.devs[id]; !d.claimed || d.sandbox != sb {
				t.Fatalf("device %s state inconsistent", id)
			}
		}
	}
	for _, n := range x.nodes {
		var cpu, mem int64
		for sb, req := range live {
			if ids := x.claims[sb]; len(ids) > 0 && x.devs[ids[0]].node == n {
				cpu += req.CPUMillis
				mem += req.Memory
			}
		}
		if n.cpuFree != 16000-cpu || n.memFree != 64<<30-mem {
			t.Fatalf("node %s cpu/mem accounting off", n.id)
		}
		for model, s := range n.slots {
			free := 0
			for _, d := range n.devs {
				if d.model == model && !d.claimed {
					free++
				}
			}
			if len(s.free) != free {
				t.Fatalf("node %s free list %d, want %d", n.id, len(s.free), free)
			}
			if n.ready && (s.bucket != len(s.free) || x.group(n.pool, model).buckets[s.bucket][s.pos] != s) {
				t.Fatalf("node %s bucket %d for %d free", n.id, s.bucket, len(s.free))
			}
			if !n.ready && s.bucket != -1 {
				t.Fatalf("node %s not ready but bucketed", n.id)
			}
		}
	}
}

// BenchmarkSchedule measures placements per second of the in-memory index at 1,000 nodes × 8 GPUs with
// 10,000 requests of 1, 2, 4 or 8 devices; when the pool is full the oldest sandboxes are released.
func BenchmarkSchedule(b *testing.B) {
	x := New()
	for n := range 1000 {
		node := Node{ID: fmt.Sprintf("n%04d", n), PoolID: "p", Ready: true, CPUMillis: 1 << 40, MemoryBytes: 1 << 50}
		devs := make([]Device, 8)
		for i := range devs {
			devs[i] = Device{ID: fmt.Sprintf("n%04d-%d", n, i), Idx: i, GPUModel: "h100-80gb"}
		}
		x.AddNode(node, devs)
	}
	r := rand.New(rand.NewPCG(1, 2))
	sizes := []int{1, 1, 1, 2, 2, 4, 8}
	reqs := make([]Request, 10_000)
	for i := range reqs {
		reqs[i] = Request{PoolID: "p", GPUModel: "h100-80gb", GPUCount: sizes[r.IntN(len(sizes))], CPUMillis: 1000, Memory: 1 << 30, FromMS: 0, ToMS: 3_600_000}
	}
	ids := make([]string, len(reqs))
	for i := range ids {
		ids[i] = fmt.Sprintf("s%05d", i)
	}
	b.ResetTimer()
	placed := 0
	start := time.Now()
	for range b.N {
		var fifo []string
		for i, req := range reqs {
			for {
				if _, ok := x.Place(ids[i], req); ok {
					fifo = append(fifo, ids[i])
					placed++
					break
				}
				x.Release(fifo[0])
				fifo = fifo[1:]
			}
		}
		for _, id := range fifo {
			x.Release(id)
		}
	}
	b.ReportMetric(float64(placed)/time.Since(start).Seconds(), "placements/s")
}
