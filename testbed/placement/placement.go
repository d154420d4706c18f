// Package placement is the testbed scheduler's in-memory index of pools, nodes and devices: it picks a node
// and devices for a request, and keeps the claims and reservations that decide what is free. It does no I/O
// (no database, no bus, no HTTP): the testbed loads it from the database, commits each claim it hands out and
// reports what the database says.
//
// The database's device claims are the source of truth (a primary key on device_id makes a double booking
// fail its transaction on every engine); the index only makes placement fast: it is rebuilt from the database
// at start, updated when a claim commits or is released, and re-synchronised from the database when a claim
// insert reports a duplicate (another process of the testbed placed there first).
//
// Placement is best-fit: among ready nodes with enough free devices of the model (and CPU and memory), it
// takes one with the FEWEST free devices, so large requests keep finding whole nodes. Nodes are kept in
// buckets by their free-device count, so a placement costs O(devices per node), not O(nodes).
//
// Every method of Index is safe for concurrent use. Times are unix milliseconds.
package placement

import (
	"slices"
	"sort"
	"sync"
)

// Node is a node as the index sees it.
type Node struct {
	ID          string
	PoolID      string
	Ready       bool // placeable; a node that is not keeps its devices and claims but gets no placement
	CPUMillis   int64
	MemoryBytes int64
}

// Device is one GPU of a node.
type Device struct {
	ID       string
	Idx      int // its index on the node; a placement lists devices in index order
	GPUModel string
	MIG      []string // the MIG profiles it offers
}

// Reservation books GPUCount devices of a pool and model for [FromMS, ToMS), not particular devices.
type Reservation struct {
	ID       string
	OrgID    string
	PoolID   string
	GPUModel string
	GPUCount int
	FromMS   int64
	ToMS     int64
}

// Request is what the scheduler places.
type Request struct {
	PoolID     string
	GPUModel   string
	GPUCount   int
	MIGProfile string
	CPUMillis  int64
	Memory     int64
	OrgID      string // its own reservations do not block it
	FromMS     int64  // the window the devices are needed for
	ToMS       int64
}

// Pick is where a request went.
type Pick struct {
	NodeID  string
	Devices []string // device IDs, in index order
}

type groupKey struct{ pool, model string }

type idev struct {
	id      string
	node    *inode
	idx     int
	model   string
	mig     []string
	claimed bool
	expires int64 // claim's expiry (unix ms) while claimed
	sandbox string
	// next is a sandbox the database says holds this device while this process still has it claimed for
	// a placement of its own that is about to fail: the release hands the device over instead of freeing it.
	next    string
	nextExp int64
}

type inode struct {
	id, pool string
	ready    bool
	cpuFree  int64
	memFree  int64
	cpu, mem int64 // the node's whole CPU (millis) and memory (bytes)
	devs     []*idev
	slots    map[string]*gslot // by model
}

// gslot is a node's place in one (pool, model) group.
type gslot struct {
	node   *inode
	free   []*idev // unclaimed devices of the model, by index
	bucket int     // len(free) when placed in a bucket, -1 when out (node not ready)
	pos    int
}

type group struct {
	buckets [][]*gslot // buckets[k]: ready nodes with exactly k free devices
	slots   []*gslot
	res     []resv
}

type resv struct {
	id, org      string
	count        int
	fromMS, toMS int64
}

func toResv(r Reservation) resv {
	return resv{id: r.ID, org: r.OrgID, count: r.GPUCount, fromMS: r.FromMS, toMS: r.ToMS}
}

// Index is the placement index. The zero value is not usable; call New.
type Index struct {
	mu     sync.Mutex
	groups map[groupKey]*group
	nodes  map[string]*inode
	devs   map[string]*idev
	claims map[string][]string // sandbox -> devices
	cpuReq map[string][2]int64 // sandbox -> cpu, mem held on its node
}

// New returns an empty index.
func New() *Index {
	return &Index{groups: map[groupKey]*group{}, nodes: map[string]*inode{}, devs: map[string]*idev{},
		claims: map[string][]string{}, cpuReq: map[string][2]int64{}}
}

func (x *Index) group(pool, model string) *group {
	k := groupKey{pool, model}
	g := x.groups[k]
	if g == nil {
		g = &group{}
		x.groups[k] = g
	}
	return g
}

func (g *group) insert(s *gslot) {
	k := len(s.free)
	for len(g.buckets) <= k {
		g.buckets = append(g.buckets, nil)
	}
	s.bucket, s.pos = k, len(g.buckets[k])
	g.buckets[k] = append(g.buckets[k], s)
}

func (g *group) remove(s *gslot) {
	if s.bucket < 0 {
		return
	}
	b := g.buckets[s.bucket]
	last := b[len(b)-1]
	b[s.pos] = last
	last.pos = s.pos
	g.buckets[s.bucket] = b[:len(b)-1]
	s.bucket = -1
}

// AddNode adds (or replaces) a node and its devices. It sorts devs by Idx.
func (x *Index) AddNode(n Node, devs []Device) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if old := x.nodes[n.ID]; old != nil {
		x.setReadyLocked(old, false)
	}
	in := &inode{id: n.ID, pool: n.PoolID, cpuFree: n.CPUMillis, memFree: n.MemoryBytes, cpu: n.CPUMillis, mem: n.MemoryBytes, slots: map[string]*gslot{}}
	x.nodes[n.ID] = in
	sort.Slice(devs, func(i, j int) bool { return devs[i].Idx < devs[j].Idx })
	for _, d := range devs {
		dv := &idev{id: d.ID, node: in, idx: d.Idx, model: d.GPUModel, mig: d.MIG}
		in.devs = append(in.devs, dv)
		x.devs[d.ID] = dv
		s := in.slots[d.GPUModel]
		if s == nil {
			s = &gslot{node: in, bucket: -1}
			in.slots[d.GPUModel] = s
			g := x.group(n.PoolID, d.GPUModel)
			g.slots = append(g.slots, s)
		}
		s.free = append(s.free, dv)
	}
	x.setReadyLocked(in, n.Ready)
}

func (x *Index) setReadyLocked(n *inode, ready bool) {
	if n.ready == ready {
		return
	}
	n.ready = ready
	for model, s := range n.slots {
		g := x.group(n.pool, model)
		if ready {
			g.insert(s)
		} else {
			g.remove(s)
		}
	}
}

// SetReady marks a node placeable (ready) or not. An unknown node is ignored.
func (x *Index) SetReady(nodeID string, ready bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if n := x.nodes[nodeID]; n != nil {
		x.setReadyLocked(n, ready)
	}
}

// claimLocked marks devices claimed by sandbox (already chosen or loaded from the database).
func (x *Index) claimLocked(sandbox string, devIDs []string, expires int64, cpu, mem int64) {
	var node *inode
	var mine []string
	for _, id := range devIDs {
		d := x.devs[id]
		if d == nil || d.sandbox == sandbox {
			continue
		}
		mine = append(mine, id)
		if d.claimed {
			d.next, d.nextExp = sandbox, expires
			continue
		}
		node = d.node
		s := d.node.slots[d.model]
		g := x.group(d.node.pool, d.model)
		wasIn := s.bucket >= 0
		g.remove(s)
		s.free = slices.DeleteFunc(s.free, func(v *idev) bool { return v == d })
		if wasIn {
			g.insert(s)
		}
		d.claimed, d.expires, d.sandbox = true, expires, sandbox
	}
	x.claims[sandbox] = append(x.claims[sandbox], mine...)
	if node != nil && (cpu > 0 || mem > 0) {
		node.cpuFree -= cpu
		node.memFree -= mem
		x.cpuReq[sandbox] = [2]int64{cpu, mem}
	}
}

// Claim records a claim loaded from or committed to the database: sandbox holds devIDs until expires and cpu
// and mem on their node. A device another sandbox holds in the index is handed to sandbox when that one
// releases it (the database says sandbox owns it).
func (x *Index) Claim(sandbox string, devIDs []string, expires int64, cpu, mem int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	_, known := x.claims[sandbox]
	if known {
		cpu, mem = 0, 0 // CPU and memory were counted when it was first claimed
	}
	x.claimLocked(sandbox, devIDs, expires, cpu, mem)
}

// Release frees every device a sandbox holds, and its CPU and memory.
func (x *Index) Release(sandbox string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.releaseLocked(sandbox)
}

func (x *Index) releaseLocked(sandbox string) {
	ids, ok := x.claims[sandbox]
	if !ok {
		return
	}
	delete(x.claims, sandbox)
	var node *inode
	for _, id := range ids {
		d := x.devs[id]
		if d != nil && d.next == sandbox {
			d.next, d.nextExp = "", 0
		}
		if d == nil || !d.claimed || d.sandbox != sandbox {
			continue
		}
		node = d.node
		if d.next != "" { // the database gave it to another sandbox: hand it over
			d.sandbox, d.expires, d.next, d.nextExp = d.next, d.nextExp, "", 0
			continue
		}
		s := d.node.slots[d.model]
		g := x.group(d.node.pool, d.model)
		wasIn := s.bucket >= 0
		g.remove(s)
		i, _ := slices.BinarySearchFunc(s.free, d.idx, func(v *idev, idx int) int { return v.idx - idx })
		s.free = slices.Insert(s.free, i, d)
		if wasIn {
			g.insert(s)
		}
		d.claimed, d.expires, d.sandbox = false, 0, ""
	}
	if r, ok := x.cpuReq[sandbox]; ok && node != nil {
		node.cpuFree += r[0]
		node.memFree += r[1]
		delete(x.cpuReq, sandbox)
	}
}

// Extend moves a sandbox's claim expiry.
func (x *Index) Extend(sandbox string, expires int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, id := range x.claims[sandbox] {
		if d := x.devs[id]; d != nil && d.sandbox == sandbox {
			d.expires = expires
		}
	}
}

// Claimed returns, for every claimed device, the sandbox that holds it.
func (x *Index) Claimed() map[string]string {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := map[string]string{}
	for _, d := range x.devs {
		if d.claimed {
			out[d.id] = d.sandbox
		}
	}
	return out
}

// countsLocked returns (free devices on ready nodes, all devices of the model on ready nodes).
func (x *Index) countsLocked(g *group, model string) (free, total int) {
	for _, s := range g.slots {
		if s.bucket < 0 {
			continue
		}
		free += len(s.free)
		for _, d := range s.node.devs {
			if d.model == model {
				total++
			}
		}
	}
	return free, total
}

func migOK(d *idev, profile string) bool {
	return profile == "" || slices.Contains(d.mig, profile)
}

// Place chooses a node and devices for r and marks them claimed in memory by sandbox, with r's CPU and
// memory, until r.ToMS. The caller must commit the claim to the database and call Release on failure. ok is
// false when nothing fits now.
func (x *Index) Place(sandbox string, r Request) (Pick, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	g := x.groups[groupKey{r.PoolID, r.GPUModel}]
	if g == nil || r.GPUCount < 1 {
		return Pick{}, false
	}
	if len(g.res) > 0 {
		free, _ := x.countsLocked(g, r.GPUModel)
		if free-g.reservedLocked(r.OrgID, r.FromMS, r.ToMS) < r.GPUCount {
			return Pick{}, false
		}
	}
	for k := r.GPUCount; k < len(g.buckets); k++ {
		for _, s := range g.buckets[k] {
			n := s.node
			if n.cpuFree < r.CPUMillis || n.memFree < r.Memory {
				continue
			}
			var pick []string
			for _, d := range s.free {
				if migOK(d, r.MIGProfile) {
					pick = append(pick, d.id)
					if len(pick) == r.GPUCount {
						break
					}
				}
			}
			if len(pick) < r.GPUCount {
				continue
			}
			x.claimLocked(sandbox, pick, r.ToMS, r.CPUMillis, r.Memory)
			return Pick{NodeID: n.id, Devices: pick}, true
		}
	}
	return Pick{}, false
}

// Fits reports whether r could be placed now, without claiming.
func (x *Index) Fits(r Request) bool {
	const probe = "\x00probe"
	_, ok := x.Place(probe, r)
	if ok {
		x.Release(probe)
	}
	return ok
}

// Largest returns the most CPU and memory of a ready node of the pool with at least r.GPUCount devices of
// the model (each its own maximum), and whether there is such a node: a request for more than these can
// never be placed, however many devices free up.
func (x *Index) Largest(r Request) (cpu, mem int64, ok bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	g := x.groups[groupKey{r.PoolID, r.GPUModel}]
	if g == nil {
		return 0, 0, false
	}
	for _, s := range g.slots {
		n, devs := s.node, 0
		for _, d := range n.devs {
			if d.model == r.GPUModel {
				devs++
			}
		}
		if s.bucket >= 0 && devs >= r.GPUCount {
			cpu, mem, ok = max(cpu, n.cpu), max(mem, n.mem), true
		}
	}
	return cpu, mem, ok
}

// CountCapacity is what a pool offers for one GPU count of a model: whether a node of the pool can hold that
// many devices of the model at all (the counts offered), and how many sandboxes of that count could start now.
type CountCapacity struct {
	Count int
	// FreeNow counts the sandboxes of Count devices that free devices of ready nodes could hold now, each on
	// one node. It leaves CPU, memory and others' reservations aside: a launch may still answer no_capacity.
	FreeNow int
}

// CountCapacities returns, for each GPU count from 1 to the most devices of the model on one ready node of
// the pool (at most limit), how many sandboxes of that count fit on free devices now. Empty when the pool has
// no ready node with the model.
func (x *Index) CountCapacities(pool, model string, limit int) []CountCapacity {
	x.mu.Lock()
	defer x.mu.Unlock()
	g := x.groups[groupKey{pool, model}]
	if g == nil {
		return nil
	}
	most := 0
	for _, s := range g.slots {
		if s.bucket < 0 {
			continue
		}
		n := 0
		for _, d := range s.node.devs {
			if d.model == model {
				n++
			}
		}
		most = max(most, n)
	}
	out := make([]CountCapacity, 0, min(most, limit))
	for c := 1; c <= min(most, limit); c++ {
		free := 0
		for _, s := range g.slots {
			if s.bucket >= 0 {
				free += len(s.free) / c
			}
		}
		out = append(out, CountCapacity{Count: c, FreeNow: free})
	}
	return out
}

// PoolCounts returns per model [free now, total] on ready nodes of a pool; models without a ready device are
// left out.
func (x *Index) PoolCounts(pool string) map[string][2]int {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := map[string][2]int{}
	for k, g := range x.groups {
		if k.pool != pool {
			continue
		}
		f, t := x.countsLocked(g, k.model)
		if t > 0 {
			out[k.model] = [2]int{f, t}
		}
	}
	return out
}
