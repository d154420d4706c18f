package testbed

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tamarack-ai/tamarack/platform/inbox"
	"github.com/tamarack-ai/tamarack/platform/web"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/services/events"
)

// newID returns prefix-<20 hex>: a DNS label, as backends require of sandbox IDs.
func newID(prefix string) string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// Load builds the scheduler index from the database: nodes, devices, active claims and reservations.
func (s *Service) Load(ctx context.Context) error {
	db := s.db.WithContext(ctx)
	nodes, err := allNodes(db)
	if err != nil {
		return fmt.Errorf("load nodes: %w", err)
	}
	devs, err := allDevices(db)
	if err != nil {
		return fmt.Errorf("load devices: %w", err)
	}
	claims, err := allClaims(db)
	if err != nil {
		return fmt.Errorf("load claims: %w", err)
	}
	res, err := liveReservations(db)
	if err != nil {
		return fmt.Errorf("load reservations: %w", err)
	}
	boxes, err := liveSandboxes(db)
	if err != nil {
		return fmt.Errorf("load sandboxes: %w", err)
	}
	x := newIndex()
	byNode := map[string][]Device{}
	for _, d := range devs {
		byNode[d.NodeID] = append(byNode[d.NodeID], d)
	}
	for _, n := range nodes {
		x.addNode(n, byNode[n.ID])
	}
	bySandbox := map[string][]DeviceClaim{}
	for _, c := range claims {
		bySandbox[c.SandboxID] = append(bySandbox[c.SandboxID], c)
	}
	cpu := map[string][2]int64{}
	for _, b := range boxes {
		cpu[b.ID] = [2]int64{b.CPUMillis, b.MemoryBytes}
	}
	for sb, cs := range bySandbox {
		ids := make([]string, len(cs))
		for i, c := range cs {
			ids[i] = c.DeviceID
		}
		x.claim(sb, ids, cs[0].ExpiresAt, cpu[sb][0], cpu[sb][1])
	}
	for _, r := range res {
		x.reserve(r)
	}
	s.mu.Lock()
	s.idx, s.loaded, s.loadedAt = x, true, time.Now()
	s.mu.Unlock()
	return nil
}

// indexRefresh is how stale the scheduler index may get before the supervisor reloads it.
const indexRefresh = 30 * time.Second

// reloadIndex reloads the index from the database when the last load is older than minAge, so that pools,
// nodes and releases made by another process (a second testbed replica, `tamarack seed` beside a running
// server) become visible. It reports whether it reloaded.
func (s *Service) reloadIndex(ctx context.Context, minAge time.Duration) (bool, error) {
	s.mu.Lock()
	fresh := time.Since(s.loadedAt) < minAge
	s.mu.Unlock()
	if fresh {
		return false, nil
	}
	return true, s.Load(ctx)
}

func (s *Service) writePoolChanged(tx *gorm.DB, p Pool) error {
	models, err := poolGPUModels(tx, p.ID)
	if err != nil {
		return err
	}
	ev := events.PoolChangedV1{PoolID: p.ID, VendorOrgID: p.VendorOrgID, Name: p.Name, Region: p.Region,
		Backend: p.Backend, GPUModels: models, At: p.UpdatedAt}
	return eventbusWrite(tx, s, events.PoolChanged, fmt.Sprintf("%s-%d", p.ID, p.UpdatedAt.UnixMilli()), ev)
}

// poolChangedAt is when a pool changes at now: a millisecond after its last change at least, so that each
// change is its own pool.changed event (the event's ID is the pool's and that instant's).
func poolChangedAt(p Pool, now time.Time) time.Time {
	now = stamp(now)
	if next := p.UpdatedAt.Add(time.Millisecond); now.Before(next) {
		return next
	}
	return now
}

// onPlatformHost reports backends whose sandboxes run on the machine the testbed itself runs on.
func onPlatformHost(backend string) bool { return backend == "local" || backend == "simulator" }

// CreatePool declares a pool owned by a vendor organisation (the caller's, or any for staff).
func (s *Service) CreatePool(ctx context.Context, c web.Principal, in CreatePoolInput) (Pool, error) {
	if !c.Staff {
		if c.OrgKind != "vendor" || !c.IsOrgAdmin() {
			return Pool{}, ErrForbidden.WithDetailMsg("problem.forbidden.pool_declare", nil)
		}
		in.VendorOrgID = c.OrgID
		if onPlatformHost(in.Backend) {
			// A local pool runs sandboxes on the platform's own machine: its capacity is the programme's to
			// declare, or a vendor could over-commit the host or sell time on a simulator that runs nothing.
			return Pool{}, ErrHostBackendStaff.WithDetailMsg("problem.host_backend_staff_only.pool", problem.Args{"Backend": in.Backend})
		}
	}
	if err := in.Validate(); err != nil {
		return Pool{}, err
	}
	if err := checkImageSettings(c, nil, in.Settings); err != nil {
		return Pool{}, err
	}
	settings, _ := json.Marshal(nonNilMap(in.Settings))
	now := stamp(s.clock.Now())
	p := Pool{ID: newID("pool"), VendorOrgID: in.VendorOrgID, Name: strings.TrimSpace(in.Name),
		Region: strings.TrimSpace(in.Region), Backend: in.Backend, Settings: string(settings), CreatedAt: now, UpdatedAt: now}
	err := sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		if err := createPool(tx, &p); err != nil {
			return err
		}
		if err := s.audit(tx, c, p.VendorOrgID, "pool.create", p.ID, p.Name); err != nil {
			return err
		}
		return s.writePoolChanged(tx, p)
	})
	if err != nil {
		return Pool{}, fmt.Errorf("create pool: %w", err)
	}
	s.outbox.Kick()
	return p, nil
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func canManagePool(c web.Principal, p Pool) bool {
	return c.Staff || (c.OrgID == p.VendorOrgID && c.IsOrgAdmin())
}

// UpdatePool changes a pool's name, region or settings and answers the pool with its capacity, as GetPool does.
func (s *Service) UpdatePool(ctx context.Context, c web.Principal, id string, in UpdatePoolInput) (PoolView, error) {
	var p Pool
	err := sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		var err error
		if p, err = managedPool(tx, c, id, true); err != nil {
			return err
		}
		var f problem.Fields
		if in.Name != nil {
			f.Check(strings.TrimSpace(*in.Name) != "", "name", "required", "must not be empty")
			p.Name = strings.TrimSpace(*in.Name)
		}
		if in.Region != nil {
			f.Check(strings.TrimSpace(*in.Region) != "", "region", "required", "must not be empty")
			p.Region = strings.TrimSpace(*in.Region)
		}
		checkSettings(&f, p.Backend, in.Settings)
		if err := f.Err(); err != nil {
			return err
		}
		if in.Settings != nil {
			if err := checkImageSettings(c, p.SettingsMap(), in.Settings); err != nil {
				return err
			}
			b, _ := json.Marshal(in.Settings)
			p.Settings = string(b)
		}
		p.UpdatedAt = poolChangedAt(p, s.clock.Now())
		if err := savePool(tx, &p); err != nil {
			return err
		}
		if err := s.audit(tx, c, p.VendorOrgID, "pool.update", p.ID, p.Name); err != nil {
			return err
		}
		return s.writePoolChanged(tx, p)
	})
	if err != nil {
		return PoolView{}, fmt.Errorf("update pool %s: %w", id, err)
	}
	s.outbox.Kick()
	nodes, err := poolNodeCount(s.db.WithContext(ctx), p.ID)
	if err != nil {
		return PoolView{}, err
	}
	return PoolView{Pool: p, Models: s.index().poolCounts(p.ID), Nodes: int(nodes)}, nil
}

// PoolView is a pool with its capacity.
type PoolView struct {
	Pool
	Models map[string][2]int // model -> free now, total (ready nodes)
	Nodes  int
	// BackendProblem says why the pool's backend cannot work on this host, and how to fix it; empty when
	// it can (Deps.Unavailable).
	BackendProblem string
}

// ListPools lists every pool (the catalogue of hardware is public).
func (s *Service) ListPools(ctx context.Context) ([]PoolView, error) {
	pools, err := allPools(s.db.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	nodes, err := nodeCounts(s.db.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	out := make([]PoolView, len(pools))
	for i, p := range pools {
		out[i] = PoolView{Pool: p, Models: s.index().poolCounts(p.ID), Nodes: nodes[p.ID], BackendProblem: s.unavailable[p.Backend]}
	}
	return out, nil
}

// GetPool returns one pool with its nodes and devices.
func (s *Service) GetPool(ctx context.Context, id string) (PoolView, []Node, []Device, error) {
	db := s.db.WithContext(ctx)
	p, err := poolByID(db, id, false)
	if err != nil {
		return PoolView{}, nil, nil, err
	}
	nodes, err := poolNodes(db, id)
	if err != nil {
		return PoolView{}, nil, nil, err
	}
	devs, err := poolDevices(db, id)
	if err != nil {
		return PoolView{}, nil, nil, err
	}
	return PoolView{Pool: p, Models: s.index().poolCounts(p.ID), Nodes: len(nodes), BackendProblem: s.unavailable[p.Backend]}, nodes, devs, nil
}

func (s *Service) index() *index {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.idx
}

// AddNode adds a node to a pool with declared devices, or with devices discovered on this host from
// nvidia-smi and the host's CDI specs (Discover). Discovered devices are not labelled declared.
func (s *Service) AddNode(ctx context.Context, c web.Principal, poolID string, in AddNodeInput) (Node, []Device, error) {
	if err := in.Validate(); err != nil {
		return Node{}, nil, err
	}
	declared := true
	if in.Discover {
		// Discovery runs a program on the testbed host and reports what it says: only for the pool's
		// managers (checked again in the transaction below).
		if _, err := managedPool(s.db.WithContext(ctx), c, poolID, false); err != nil {
			return Node{}, nil, err
		}
		if !c.Staff {
			return Node{}, nil, ErrHostBackendStaff.WithDetailMsg("problem.host_backend_staff_only.discover", nil)
		}
		found, err := DiscoverGPUs(ctx, s.opts.CDIDirs)
		if err != nil {
			return Node{}, nil, problem.New(422, "discovery_failed", "GPU discovery failed.").WithDetail("%v", err)
		}
		if len(found) > 0 {
			in.Devices, declared = found, false
		} else if len(in.Devices) == 0 {
			return Node{}, nil, problem.New(422, "discovery_failed", "GPU discovery failed.").WithDetailMsg("problem.discovery_failed.none", nil)
		}
	}
	n, devs := newNode(poolID, in, declared, s.clock.Now())
	err := s.insertNode(ctx, c, n, devs, func(tx *gorm.DB) (Pool, error) {
		p, err := managedPool(tx, c, poolID, true)
		if err != nil {
			return p, err
		}
		if onPlatformHost(p.Backend) && !c.Staff {
			return p, ErrHostBackendStaff.WithDetailMsg("problem.host_backend_staff_only.nodes", problem.Args{"Backend": p.Backend})
		}
		return p, nil
	})
	if err != nil {
		return Node{}, nil, fmt.Errorf("add node to %s: %w", poolID, err)
	}
	return n, devs, nil
}

// newNode is the node of in and its devices, not stored yet.
func newNode(poolID string, in AddNodeInput, declared bool, now time.Time) (Node, []Device) {
	now = stamp(now)
	n := Node{ID: newID("node"), PoolID: poolID, Name: strings.TrimSpace(in.Name), Health: NodeReady,
		CPUMillis: in.CPUMillis, MemoryBytes: in.MemoryBytes, HeartbeatAt: now, CreatedAt: now}
	var devs []Device
	for _, d := range in.Devices {
		mem := d.MemoryMiB
		if mem == 0 {
			mem = gpuModels[d.GPUModel]
		}
		uuid := d.UUID
		if uuid == "" {
			uuid = fmt.Sprintf("GPU-declared-%s-%d", n.ID, d.Index)
		}
		devs = append(devs, Device{ID: newID("dev"), NodeID: n.ID, PoolID: poolID, Idx: d.Index, UUID: uuid,
			GPUModel: d.GPUModel, MemoryMiB: mem, MIGProfiles: strings.Join(d.MIGProfiles, ","), Declared: declared})
	}
	return n, devs
}

// insertNode stores a new node with its devices in the pool that lockPool locks for update (and refuses
// with its error), audits it as c's, announces the pool's change and adds the node to the scheduler's index.
func (s *Service) insertNode(ctx context.Context, c web.Principal, n Node, devs []Device, lockPool func(tx *gorm.DB) (Pool, error)) error {
	err := sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		p, err := lockPool(tx)
		if err != nil {
			return err
		}
		if err := createNode(tx, &n, devs); err != nil {
			return err
		}
		if err := s.audit(tx, c, p.VendorOrgID, "node.add", n.ID, fmt.Sprintf("%s: %d device(s)", n.Name, len(devs))); err != nil {
			return err
		}
		p.UpdatedAt = poolChangedAt(p, n.CreatedAt)
		if err := savePool(tx, &p); err != nil {
			return err
		}
		return s.writePoolChanged(tx, p)
	})
	if err != nil {
		return err
	}
	s.index().addNode(n, devs)
	s.outbox.Kick()
	return nil
}

// NodeHealthInput is a heartbeat or a health change.
type NodeHealthInput struct {
	Health string // "" keeps it (heartbeat); ready, draining, down
}

// SetNodeHealth records a heartbeat (and optionally a new health). A node going down stops its sandboxes
// (reason node_lost) at the supervisor's next tick; draining takes no new sandboxes but keeps running ones.
func (s *Service) SetNodeHealth(ctx context.Context, c web.Principal, poolID, nodeID string, in NodeHealthInput) (Node, error) {
	if in.Health != "" && in.Health != NodeReady && in.Health != NodeDraining && in.Health != NodeDown {
		return Node{}, problem.Fields{{Field: "health", Code: "invalid", Message: "one of ready, draining, down"}}.Err()
	}
	var n Node
	err := sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		p, err := managedPool(tx, c, poolID, false)
		if errors.Is(err, ErrNotPoolOwner) {
			return ErrPoolNotFound
		}
		if err != nil {
			return err
		}
		if n, err = nodeOfPool(tx, poolID, nodeID); err != nil {
			return err
		}
		n.HeartbeatAt = stamp(s.clock.Now())
		if in.Health != "" {
			if err := s.audit(tx, c, p.VendorOrgID, "node.health", n.ID, in.Health); err != nil {
				return err
			}
			n.Health = in.Health
			n.AgentHealth = "" // staff's word is the latest: the agent's next report may impose its own again
		} else if n.Health == NodeDown && n.AgentHealth != NodeDown {
			n.Health = NodeReady // a heartbeat from a node that was down brings it back, unless its agent says down
		}
		return saveNode(tx, &n)
	})
	if err != nil {
		return Node{}, fmt.Errorf("node %s: %w", nodeID, err)
	}
	s.index().setHealth(n.ID, n.Health)
	return n, nil
}

// ParseNvidiaSMI parses `nvidia-smi --query-gpu=index,uuid,name,memory.total --format=csv,noheader` output
// (with or without units), mapping product names to the known models.
func ParseNvidiaSMI(out []byte) ([]DeviceInput, error) {
	var devs []DeviceInput
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		parts := strings.Split(line, ",")
		if len(parts) < 4 {
			return nil, fmt.Errorf("nvidia-smi: unexpected line %q", line)
		}
		for i := range parts {
			parts[i] = strings.TrimSpace(parts[i])
		}
		idx, err := strconv.Atoi(parts[0])
		if err != nil {
			return nil, fmt.Errorf("nvidia-smi: bad index in %q", line)
		}
		mem, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(parts[3], "MiB")), 10, 64)
		model, ok := ModelFromName(parts[2], mem)
		if !ok {
			return nil, fmt.Errorf("nvidia-smi: GPU %q is not a known model (%s)", parts[2], strings.Join(GPUModels(), ", "))
		}
		devs = append(devs, DeviceInput{Index: idx, UUID: parts[1], GPUModel: model, MemoryMiB: mem})
	}
	sort.Slice(devs, func(i, j int) bool { return devs[i].Index < devs[j].Index })
	return devs, sc.Err()
}

// ModelFromName maps an nvidia-smi product name (and memory in MiB) to a known model.
func ModelFromName(name string, memMiB int64) (string, bool) {
	n := strings.ToLower(name)
	switch {
	case strings.Contains(n, "h200"):
		return "h200-141gb", true
	case strings.Contains(n, "h100"):
		return "h100-80gb", true
	case strings.Contains(n, "a100"):
		if memMiB > 0 && memMiB < 60*1024 || strings.Contains(n, "40gb") {
			return "a100-40gb", true
		}
		return "a100-80gb", true
	case strings.Contains(n, "l40s"):
		return "l40s-48gb", true
	case strings.Contains(n, " l4") || strings.HasSuffix(n, "l4"):
		return "l4-24gb", true
	case strings.Contains(n, "rtx 6000 ada"):
		return "rtx6000ada-48gb", true
	case strings.Contains(n, "mi300x"):
		return "mi300x-192gb", true
	}
	return "", false
}

// ApplyListing updates the projections of compute listings and of model and dataset listings' try-it images
// from a marketplace event. Published upserts (newer versions win); suspended and retired remove. Idempotent
// by event ID.
func (s *Service) ApplyListing(ctx context.Context, eventID, kind string, ev events.ListingChangedV1) error {
	err := sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		if fresh, err := processed.Mark(tx, "", eventID, s.clock.Now()); err != nil || !fresh {
			return err
		}
		switch kind {
		case "published":
			if ev.Kind == "model" || ev.Kind == "dataset" {
				return applyImageListing(tx, ev)
			}
			if ev.Kind != "compute" || ev.Compute == nil {
				return nil
			}
			if v, err := listingVersion(tx, ev.ListingID); err == nil && v > ev.Version {
				return nil
			}
			l := Listing{ID: ev.ListingID, VendorOrgID: ev.VendorOrgID, Title: ev.Title, PoolID: ev.Compute.PoolID,
				GPUModel: ev.Compute.GPUModel, Region: ev.Compute.Region, MinMinutes: ev.Compute.MinDurationMinutes,
				MaxMinutes: ev.Compute.MaxDurationMinutes, PricePerGPUHour: ev.Compute.PricePerGPUHour,
				PlanID: ev.Compute.PlanID, Version: ev.Version, UpdatedAt: stamp(ev.At), VisibleTo: strings.Join(ev.Compute.VisibleTo, ","),
				Gated: ev.Compute.Gated}
			if l.MaxMinutes <= 0 {
				l.MaxMinutes = 24 * 60
			}
			return saveListing(tx, &l)
		case "suspended", "retired":
			return dropListing(tx, ev.ListingID)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("apply listing %s: %w", ev.ListingID, err)
	}
	return nil
}

// ApplyEntitlement updates the projection of an organisation's entitlement to a listing from a marketplace
// entitlement event (granted: active, revoked: not). The newest event (by At) wins, so a revocation
// delivered before the grant it revokes is not undone by it. Idempotent by event ID.
//
// A revocation also stops, with reason access_revoked, the organisation's sandboxes launched from the listing
// while it is gated (the vendor's own are exempt, as at launch), and cancels its reservations of it. It stops
// those that mount the listing's files too, unless the marketplace still gives the organisation those files
// (another entitlement, a listing anyone may have). The marketplace is asked before anything is recorded, so
// that one that does not answer leaves the event to be delivered again.
func (s *Service) ApplyEntitlement(ctx context.Context, eventID string, granted bool, ev events.EntitlementChangedV1) error {
	var withdrawn []string
	if !granted {
		var err error
		if withdrawn, err = s.mountsWithdrawn(ctx, ev.OrganizationID, ev.ListingID); err != nil {
			return fmt.Errorf("apply entitlement %s: %w", ev.EntitlementID, err)
		}
	}
	var (
		stopped   []Sandbox
		cancelled []Reservation
	)
	err := sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		stopped, cancelled = nil, nil // a retried transaction starts again
		if fresh, err := processed.Mark(tx, "", eventID, s.clock.Now()); err != nil || !fresh {
			return err
		}
		cur, err := entitlementOf(tx, ev.OrganizationID, ev.ListingID)
		switch {
		case err == nil && cur.At.After(stamp(ev.At)):
			return nil // an older event than the one applied
		case err != nil && !sqldb.IsNotFound(err):
			return err
		}
		e := Entitlement{OrgID: ev.OrganizationID, ListingID: ev.ListingID, EntitlementID: ev.EntitlementID,
			Active: granted, At: stamp(ev.At), UpdatedAt: stamp(s.clock.Now())}
		if granted && ev.ExpiresAt != nil {
			e.ExpiresAt = stampPtr(*ev.ExpiresAt)
		}
		if err := putEntitlement(tx, e); err != nil {
			return err
		}
		ids := withdrawn
		if !granted {
			gated, err := gatedSandboxes(tx, ev.OrganizationID, ev.ListingID)
			if err != nil {
				return err
			}
			ids = append(slices.Clip(ids), gated...)
			if cancelled, err = gatedReservations(tx, ev.OrganizationID, ev.ListingID); err != nil {
				return err
			}
			for i := range cancelled {
				cancelled[i].State = ResCancelled
				if err := saveReservation(tx, &cancelled[i]); err != nil {
					return err
				}
			}
		}
		for _, id := range ids {
			sb, err := lockSandbox(tx, id)
			if err != nil {
				return err
			}
			if sb.Terminal() || sb.State == StateStopping {
				continue
			}
			if err := s.transition(tx, &sb, StateStopping, ReasonAccessRevoked, s.clock.Now()); err != nil {
				return err
			}
			stopped = append(stopped, sb)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("apply entitlement %s: %w", ev.EntitlementID, err)
	}
	for i := range stopped {
		s.committed(&stopped[i])
		s.startStop(stopped[i].ID)
	}
	for _, r := range cancelled {
		s.index().unreserve(r)
	}
	return nil
}

// mountsWithdrawn lists the sandboxes of an organisation that mount a listing's files the marketplace no
// longer gives it.
func (s *Service) mountsWithdrawn(ctx context.Context, orgID, listingID string) ([]string, error) {
	sbs, err := mountingSandboxes(s.db.WithContext(ctx), orgID, listingID)
	if err != nil || len(sbs) == 0 {
		return nil, err
	}
	if s.links == nil {
		return nil, nil // no marketplace to ask: nothing was mounted through it
	}
	_, err = s.artifactLinks(ctx, web.Principal{OrgID: orgID}, orgID, listingID)
	p, answered := problem.From(err)
	switch {
	case err == nil:
		return nil, nil // the files are still the organisation's
	case answered && (p.Code == ErrArtifactsAccessRequired.Code || p.Code == ErrMountListingNotFound.Code):
		ids := make([]string, len(sbs))
		for i, sb := range sbs {
			ids[i] = sb.ID
		}
		return ids, nil
	case answered && p.Code != ErrArtifactsUnavailable.Code:
		return nil, nil // the marketplace answered something else (no files now): access itself stands
	}
	return nil, err // no answer: the event is delivered again
}

// checkAccess refuses a gated listing to an organisation without a current entitlement (403 access_required);
// the listing's vendor and staff are exempt.
func (s *Service) checkAccess(ctx context.Context, c web.Principal, l Listing) error {
	if !l.Gated || l.exempt(c) {
		return nil
	}
	if c.OrgID != "" {
		ok, err := entitled(s.db.WithContext(ctx), c.OrgID, l.ID, s.clock.Now())
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
	}
	return ErrAccessRequired.WithDetailMsg("problem.access_required.listing", problem.Args{"Listing": l.ID}).
		WithExtra("listing_id", l.ID)
}

// entitledListings returns the listings c's organisation holds a current entitlement to.
func (s *Service) entitledListings(ctx context.Context, c web.Principal) (map[string]bool, error) {
	out := map[string]bool{}
	if c.OrgID == "" {
		return out, nil
	}
	ids, err := entitledListingIDs(s.db.WithContext(ctx), c.OrgID, s.clock.Now())
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}

// processed is the consumers' inbox: each records an event's ID in the transaction of its effect.
var processed = inbox.Table{Name: "testbed_processed_events", ID: "id", At: "processed_at"}

// Listings lists the compute listings the testbed can launch for c (restricted ones only to their
// organisations).
func (s *Service) Listings(ctx context.Context, c web.Principal) ([]Listing, error) {
	all, err := allListings(s.db.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	ls := all[:0]
	for _, l := range all {
		if l.VisibleFor(c) {
			ls = append(ls, l)
		}
	}
	return ls, nil
}
