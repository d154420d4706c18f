package placement_test

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/tamarack-ai/tamarack/testbed/placement"
)

const h100, l4 = "h100-80gb", "l4-24gb"

// fixture is pool p: node a (2 H100, 8 CPUs, 32 GiB), node b (4 H100, two with MIG 3g.40gb, 16 CPUs, 64 GiB,
// its devices listed out of order) and node c (8 H100, not ready); pool q: node d (1 L4).
func fixture() *placement.Index {
	x := placement.New()
	devs := func(node string, idx ...int) []placement.Device {
		var out []placement.Device
		for _, i := range idx {
			out = append(out, placement.Device{ID: fmt.Sprintf("%s%d", node, i), Idx: i, GPUModel: h100})
		}
		return out
	}
	x.AddNode(placement.Node{ID: "a", PoolID: "p", Ready: true, CPUMillis: 8000, MemoryBytes: 32 << 30}, devs("a", 0, 1))
	b := devs("b", 3, 1, 0, 2)
	b[0].MIG, b[3].MIG = []string{"1g.10gb", "3g.40gb"}, []string{"3g.40gb"}
	x.AddNode(placement.Node{ID: "b", PoolID: "p", Ready: true, CPUMillis: 16000, MemoryBytes: 64 << 30}, b)
	x.AddNode(placement.Node{ID: "c", PoolID: "p", CPUMillis: 64000, MemoryBytes: 512 << 30}, devs("c", 0, 1, 2, 3, 4, 5, 6, 7))
	x.AddNode(placement.Node{ID: "d", PoolID: "q", Ready: true, CPUMillis: 4000, MemoryBytes: 16 << 30},
		[]placement.Device{{ID: "d0", GPUModel: l4}})
	return x
}

func TestPlace(t *testing.T) {
	t.Parallel()
	req := func(count int) placement.Request {
		return placement.Request{PoolID: "p", GPUModel: h100, GPUCount: count, CPUMillis: 1000, Memory: 1 << 30, OrgID: "o1",
			FromMS: 1000, ToMS: 2000}
	}
	other := placement.Reservation{ID: "r", OrgID: "o2", PoolID: "p", GPUModel: h100, GPUCount: 5, FromMS: 1500, ToMS: 3000}
	for _, c := range []struct {
		name  string
		setup func(x *placement.Index)
		req   placement.Request
		want  placement.Pick // zero: refused
	}{
		{name: "best fit: the node with the fewest free devices", req: req(1), want: placement.Pick{NodeID: "a", Devices: []string{"a0"}}},
		{name: "more than the small node holds, in index order", req: req(3), want: placement.Pick{NodeID: "b", Devices: []string{"b0", "b1", "b2"}}},
		{name: "a MIG profile", req: func() placement.Request { r := req(2); r.MIGProfile = "3g.40gb"; return r }(),
			want: placement.Pick{NodeID: "b", Devices: []string{"b2", "b3"}}},
		{name: "a MIG profile too few devices offer", req: func() placement.Request { r := req(2); r.MIGProfile = "1g.10gb"; return r }()},
		{name: "more CPU than the small node has", req: func() placement.Request { r := req(1); r.CPUMillis = 10000; return r }(),
			want: placement.Pick{NodeID: "b", Devices: []string{"b0"}}},
		{name: "more memory than any ready node has", req: func() placement.Request { r := req(1); r.Memory = 128 << 30; return r }()},
		{name: "a node not ready gets nothing", req: req(5)},
		{name: "a node made ready again", setup: func(x *placement.Index) { x.SetReady("c", true) }, req: req(5),
			want: placement.Pick{NodeID: "c", Devices: []string{"c0", "c1", "c2", "c3", "c4"}}},
		{name: "claimed devices are skipped", setup: func(x *placement.Index) { x.Claim("s", []string{"a0"}, 5000, 0, 0) }, req: req(2),
			want: placement.Pick{NodeID: "b", Devices: []string{"b0", "b1"}}},
		{name: "another organisation's reservation over the window", setup: func(x *placement.Index) { x.Reserve(other) }, req: req(2)},
		{name: "the caller's own reservation", setup: func(x *placement.Index) { r := other; r.OrgID = "o1"; x.Reserve(r) }, req: req(2),
			want: placement.Pick{NodeID: "a", Devices: []string{"a0", "a1"}}},
		{name: "a reservation after the window", setup: func(x *placement.Index) { r := other; r.FromMS = 2000; x.Reserve(r) }, req: req(2),
			want: placement.Pick{NodeID: "a", Devices: []string{"a0", "a1"}}},
		{name: "a reservation removed", setup: func(x *placement.Index) { x.Reserve(other); x.Unreserve(other) }, req: req(2),
			want: placement.Pick{NodeID: "a", Devices: []string{"a0", "a1"}}},
		{name: "no devices", req: req(0)},
		{name: "a model the pool lacks", req: func() placement.Request { r := req(1); r.GPUModel = l4; return r }()},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			x := fixture()
			if c.setup != nil {
				c.setup(x)
			}
			fits := x.Fits(c.req)
			got, ok := x.Place("s1", c.req)
			if ok != (c.want.NodeID != "") || fits != ok || !reflect.DeepEqual(got, c.want) {
				t.Fatalf("Place = %+v %v, Fits = %v; want %+v", got, ok, fits, c.want)
			}
		})
	}
}

func TestReleaseFreesDevicesCPUAndMemory(t *testing.T) {
	t.Parallel()
	x := fixture()
	whole := placement.Request{PoolID: "p", GPUModel: h100, GPUCount: 1, CPUMillis: 16000, Memory: 64 << 30}
	if p, ok := x.Place("s1", whole); !ok || p.NodeID != "b" {
		t.Fatalf("first placement %+v %v", p, ok)
	}
	if _, ok := x.Place("s2", whole); ok {
		t.Fatal("b's CPU and memory were counted once only")
	}
	x.Claim("s1", []string{"b0"}, 9000, 16000, 64<<30) // the commit reported back: nothing counted twice
	x.Release("s1")
	if p, ok := x.Place("s2", whole); !ok || !reflect.DeepEqual(p.Devices, []string{"b0"}) {
		t.Fatalf("after release %+v %v", p, ok)
	}
	x.Release("s2")
	x.Release("s2") // twice: no effect
	if got := x.PoolCounts("p"); !reflect.DeepEqual(got, map[string][2]int{h100: {6, 6}}) {
		t.Fatalf("counts %v", got)
	}
}

// A device the database gives to another sandbox while this process's own placement still holds it goes to
// that sandbox when the placement is released, instead of becoming free.
func TestReleaseHandsOverToTheDatabasesOwner(t *testing.T) {
	t.Parallel()
	x := fixture()
	p, ok := x.Place("mine", placement.Request{PoolID: "p", GPUModel: h100, GPUCount: 2})
	if !ok || p.NodeID != "a" {
		t.Fatalf("placement %+v %v", p, ok)
	}
	x.Claim("theirs", []string{"a1"}, 7000, 0, 0)
	x.Release("mine")
	if got := x.Claimed(); !reflect.DeepEqual(got, map[string]string{"a1": "theirs"}) {
		t.Fatalf("claimed %v", got)
	}
	if got := x.NextFree(placement.Request{PoolID: "p", GPUModel: h100, GPUCount: 6, FromMS: 0, ToMS: 10}, 100); got != 7000 {
		t.Fatalf("next free %d: the handed-over claim keeps its own expiry", got)
	}
	x.Release("theirs")
	if len(x.Claimed()) != 0 {
		t.Fatalf("claimed %v", x.Claimed())
	}
}

func TestNextFree(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		setup func(x *placement.Index)
		count int
		want  int64
	}{
		{name: "free now", count: 6, want: 100},
		{name: "at the earliest expiry that frees enough", setup: func(x *placement.Index) {
			x.Claim("s1", []string{"a0", "a1"}, 500, 0, 0)
			x.Claim("s2", []string{"b0"}, 300, 0, 0)
		}, count: 4, want: 300},
		{name: "after another organisation's reservation", setup: func(x *placement.Index) {
			x.Claim("s1", []string{"a0", "a1"}, 500, 0, 0)
			x.Reserve(placement.Reservation{ID: "r", OrgID: "o2", PoolID: "p", GPUModel: h100, GPUCount: 4, FromMS: 400, ToMS: 900})
		}, count: 5, want: 900},
		{name: "more than the ready nodes hold", count: 7, want: 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			x := fixture()
			if c.setup != nil {
				c.setup(x)
			}
			r := placement.Request{PoolID: "p", GPUModel: h100, GPUCount: c.count, OrgID: "o1", FromMS: 100, ToMS: 200}
			if got := x.NextFree(r, 100); got != c.want {
				t.Fatalf("NextFree = %d, want %d", got, c.want)
			}
		})
	}
}

func TestWindows(t *testing.T) {
	t.Parallel()
	x := fixture()
	x.Claim("s1", []string{"a0", "a1"}, 200, 0, 0)
	early := placement.Reservation{ID: "early", OrgID: "o2", PoolID: "p", GPUModel: h100, GPUCount: 2, FromMS: 0, ToMS: 100}
	late := placement.Reservation{ID: "late", OrgID: "o2", PoolID: "p", GPUModel: h100, GPUCount: 3, FromMS: 300, ToMS: 400}
	x.Reserve(early)
	x.Reserve(late)
	for _, c := range []struct {
		from, to int64
		want     int
	}{{0, 100, 2}, {100, 200, 4}, {200, 300, 6}, {250, 350, 3}, {0, 1000, 2}} {
		if got := x.MinFree("p", h100, c.from, c.to); got != c.want {
			t.Errorf("MinFree [%d, %d) = %d, want %d", c.from, c.to, got, c.want)
		}
	}
	av := x.Availabilities("", h100, []placement.Window{{FromMS: 0, ToMS: 100}, {FromMS: 300, ToMS: 400}})
	if want := []placement.Availability{{PoolID: "p", GPUModel: h100, Total: 6, Free: []int{2, 3}}}; !reflect.DeepEqual(av, want) {
		t.Fatalf("availabilities %+v", av)
	}

	// The database no longer has "late" but has another booking: the window is synced from it; "early",
	// which ends before the window, stays.
	booked := []placement.Reservation{{ID: "other", OrgID: "o3", PoolID: "p", GPUModel: h100, GPUCount: 5, FromMS: 250, ToMS: 600}}
	r := placement.Reservation{ID: "new", OrgID: "o1", PoolID: "p", GPUModel: h100, GPUCount: 2, FromMS: 100, ToMS: 400}
	if free, next := x.SyncWindow(r, booked); free != 1 || next != 600 {
		t.Fatalf("SyncWindow = %d free, next %d; want 1, 600", free, next)
	}
	if got := x.MinFree("p", h100, 0, 100); got != 2 {
		t.Fatalf("the early reservation was dropped: %d free", got)
	}
	if free, next := x.SyncWindow(r, nil); free != 4 || next != 0 {
		t.Fatalf("SyncWindow with nothing booked = %d free, next %d; want 4, 0", free, next)
	}
}

func TestCountCapacities(t *testing.T) {
	t.Parallel()
	x := fixture()
	x.Claim("s1", []string{"b0"}, 1000, 0, 0)
	want := []placement.CountCapacity{{Count: 1, FreeNow: 5}, {Count: 2, FreeNow: 2}, {Count: 3, FreeNow: 1}, {Count: 4, FreeNow: 0}}
	if got := x.CountCapacities("p", h100, 8); !reflect.DeepEqual(got, want) {
		t.Fatalf("counts %+v", got)
	}
	if got := x.CountCapacities("p", h100, 2); !reflect.DeepEqual(got, want[:2]) {
		t.Fatalf("counts up to 2 %+v", got)
	}
	x.SetReady("c", true)
	if got := x.CountCapacities("p", h100, 8); len(got) != 8 || got[7] != (placement.CountCapacity{Count: 8, FreeNow: 1}) {
		t.Fatalf("with c ready %+v", got)
	}
	if got := x.CountCapacities("q", h100, 8); len(got) != 0 {
		t.Fatalf("a model the pool lacks %+v", got)
	}
	if got := x.PoolCounts("q"); !reflect.DeepEqual(got, map[string][2]int{l4: {1, 1}}) {
		t.Fatalf("pool q %v", got)
	}
}
