package testbed

import (
	"slices"
	"sort"
	"sync"
)

// The scheduler's in-memory index of free devices. The database's device claims are the source of truth
// (a primary key on device_id makes a double booking fail its transaction on every engine); the index only
// makes placement fast: it is rebuilt from the database at start, updated when a claim commits or is
// released, and re-synchronised from the database when a claim insert reports a duplicate (another process
// of the testbed placed there first).
//
// Placement is best-fit: among ready nodes with enough free devices of the model (and CPU and memory), it
// takes one with the FEWEST free devices, so large requests keep finding whole nodes. Nodes are kept in
// buckets by their free-device count, so a placement costs O(devices per node), not O(nodes).

// PlaceRequest is what the scheduler places.
type PlaceRequest struct {
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

// Placement is where a request went.
type Placement struct {
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

type index struct {
	mu     sync.Mutex
	groups map[groupKey]*group
	nodes  map[string]*inode
	devs   map[string]*idev
	claims map[string][]string // sandbox -> devices
	cpuReq map[string][2]int64 // sandbox -> cpu, mem held on its node
}

func newIndex() *index {
	return &index{groups: map[groupKey]*group{}, nodes: map[string]*inode{}, devs: map[string]*idev{},
		claims: map[string][]string{}, cpuReq: map[string][2]int64{}}
}

func (x *index) group(pool, model string) *group {
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

// addNode adds (or replaces) a node and its devices.
func (x *index) addNode(n Node, devs []Device) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.addNodeLocked(n, devs)
}

func (x *index) addNodeLocked(n Node, devs []Device) {
	if old := x.nodes[n.ID]; old != nil {
		x.setReadyLocked(old, false)
	}
	in := &inode{id: n.ID, pool: n.PoolID, cpuFree: n.CPUMillis, memFree: n.MemoryBytes, cpu: n.CPUMillis, mem: n.MemoryBytes, slots: map[string]*gslot{}}
	x.nodes[n.ID] = in
	sort.Slice(devs, func(i, j int) bool { return devs[i].Idx < devs[j].Idx })
	for _, d := range devs {
		dv := &idev{id: d.ID, node: in, idx: d.Idx, model: d.GPUModel, mig: d.MIG()}
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
	x.setReadyLocked(in, n.Health == NodeReady)
}

func (x *index) setReadyLocked(n *inode, ready bool) {
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

// setHealth marks a node placeable (ready) or not.
func (x *index) setHealth(nodeID, health string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if n := x.nodes[nodeID]; n != nil {
		x.setReadyLocked(n, health == NodeReady)
	}
}

// claimLocked marks devices claimed by sandbox (already chosen or loaded from the database).
func (x *index) claimLocked(sandbox string, devIDs []string, expires int64, cpu, mem int64) {
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

// claim records a claim loaded from or committed to the database.
func (x *index) claim(sandbox string, devIDs []string, expires int64, cpu, mem int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	_, known := x.claims[sandbox]
	if known {
		cpu, mem = 0, 0 // CPU and memory were counted when it was first claimed
	}
	x.claimLocked(sandbox, devIDs, expires, cpu, mem)
}

// release frees every device a sandbox holds.
func (x *index) release(sandbox string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.releaseLocked(sandbox)
}

func (x *index) releaseLocked(sandbox string) {
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

// extend moves a sandbox's claim expiry.
func (x *index) extend(sandbox string, expires int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, id := range x.claims[sandbox] {
		if d := x.devs[id]; d != nil && d.sandbox == sandbox {
			d.expires = expires
		}
	}
}

// reserve adds or replaces a reservation; unreserve removes it.
func (x *index) reserve(r Reservation) {
	x.mu.Lock()
	defer x.mu.Unlock()
	g := x.group(r.PoolID, r.GPUModel)
	g.res = slices.DeleteFunc(g.res, func(v resv) bool { return v.id == r.ID })
	g.res = append(g.res, resv{id: r.ID, org: r.OrgID, count: r.GPUCount, fromMS: r.StartsMS, toMS: r.EndsMS})
}

func (x *index) unreserve(r Reservation) {
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

// counts returns (free devices on ready nodes, all devices of the model on ready nodes).
func (x *index) countsLocked(g *group, model string) (free, total int) {
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

// place chooses a node and devices for r and marks them claimed in memory. The caller must commit the claim
// to the database and call release on failure. ok is false when nothing fits now.
func (x *index) place(sandbox string, r PlaceRequest) (Placement, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	g := x.groups[groupKey{r.PoolID, r.GPUModel}]
	if g == nil || r.GPUCount < 1 {
		return Placement{}, false
	}
	if len(g.res) > 0 {
		free, _ := x.countsLocked(g, r.GPUModel)
		if free-g.reservedLocked(r.OrgID, r.FromMS, r.ToMS) < r.GPUCount {
			return Placement{}, false
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
			return Placement{NodeID: n.id, Devices: pick}, true
		}
	}
	return Placement{}, false
}

// largest returns the most CPU and memory of a ready node of the pool with at least r.GPUCount devices of
// the model (each its own maximum), and whether there is such a node: a request for more than these can
// never be placed, however many devices free up.
func (x *index) largest(r PlaceRequest) (cpu, mem int64, ok bool) {
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

// fits reports whether r could be placed now, without claiming.
func (x *index) fits(r PlaceRequest) bool {
	const probe = "\x00probe"
	p, ok := x.place(probe, r)
	if ok {
		x.release(probe)
	}
	_ = p
	return ok
}

// nextFree estimates the earliest time (unix ms) at or after now when count devices of the model could be
// free in the pool for the request's duration: claims free at their expiry, reservations of others block
// their window. It counts devices pool-wide (not per node), so it is a lower bound when devices free on
// different nodes; 0 when the pool has too few ready devices at all.
func (x *index) nextFree(r PlaceRequest, nowMS int64) int64 {
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

// GPUCountCapacity is what a listing offers for one GPU count: whether a node of its pool can hold that many
// devices of its model at all (the counts offered), and how many sandboxes of that count could start now.
type GPUCountCapacity struct {
	Count int
	// FreeNow counts the sandboxes of Count devices that free devices of ready nodes could hold now, each on
	// one node. It leaves CPU, memory and others' reservations aside: a launch may still answer no_capacity.
	FreeNow int
}

// countCapacity returns, for each GPU count from 1 to the most devices of the model on one ready node of the
// pool (at most MaxGPUsPerSandbox), how many sandboxes of that count fit on free devices now. Empty when the
// pool has no ready node with the model.
func (x *index) countCapacity(pool, model string) []GPUCountCapacity {
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
	out := make([]GPUCountCapacity, 0, min(most, MaxGPUsPerSandbox))
	for c := 1; c <= min(most, MaxGPUsPerSandbox); c++ {
		free := 0
		for _, s := range g.slots {
			if s.bucket >= 0 {
				free += len(s.free) / c
			}
		}
		out = append(out, GPUCountCapacity{Count: c, FreeNow: free})
	}
	return out
}

// poolCounts returns per model (free now, total) on ready nodes of a pool.
func (x *index) poolCounts(pool string) map[string][2]int {
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

func sortBuckets(b []AvailabilityBucket) {
	sort.Slice(b, func(i, j int) bool {
		if b[i].PoolID != b[j].PoolID {
			return b[i].PoolID < b[j].PoolID
		}
		if b[i].GPUModel != b[j].GPUModel {
			return b[i].GPUModel < b[j].GPUModel
		}
		return b[i].Start.Before(b[j].Start)
	})
}
