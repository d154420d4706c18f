package testbed

import (
	"context"
	"fmt"
	"time"

	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/platform/web"
)

// DemoPoolName is the demo pool's name: the seed finds an earlier run's pool by it (and by its vendor).
const DemoPoolName = "Northern GPU Co. — Montréal"

// SeedInput names the demo pool's owner and who declares it.
type SeedInput struct {
	VendorOrgID string
	// StaffUserID acts for the programme (the audit trail names them); may be empty.
	StaffUserID string
}

// SeedResult names the demo pool, made now or found from an earlier run.
type SeedResult struct {
	PoolID, PoolName, PoolRegion string
	Created                      bool
}

// SeedDemo adds the demo pool idempotently: DemoPoolName, owned by the vendor, on the local backend, with one
// node of 8 DECLARED h100-80gb devices (declared: nothing checks they exist; on a host with NVIDIA GPUs, add a
// node with discover: true instead). It goes through CreatePool and AddNode, so the pool's events are written
// like any other's; it flushes them, since a one-shot command has no relay loop. Call Load first.
func (s *Service) SeedDemo(ctx context.Context, in SeedInput) (SeedResult, error) {
	if in.VendorOrgID == "" {
		return SeedResult{}, fmt.Errorf("seed: no vendor organisation")
	}
	existing, err := poolNamed(s.db.WithContext(ctx), in.VendorOrgID, DemoPoolName)
	switch {
	case err == nil:
		return SeedResult{PoolID: existing.ID, PoolName: existing.Name, PoolRegion: existing.Region}, nil
	case !sqldb.IsNotFound(err):
		return SeedResult{}, err
	}
	staff := web.Principal{Staff: true, UserID: in.StaffUserID}
	p, err := s.CreatePool(ctx, staff, CreatePoolInput{VendorOrgID: in.VendorOrgID, Name: DemoPoolName, Region: "ca-montreal",
		Backend: "local", Settings: map[string]string{}})
	if err != nil {
		return SeedResult{}, err
	}
	node := AddNodeInput{Name: "mtl-gpu-01", CPUMillis: 128_000, MemoryBytes: 1 << 40}
	for i := range 8 {
		node.Devices = append(node.Devices, DeviceInput{Index: i, GPUModel: "h100-80gb"})
	}
	if _, _, err := s.AddNode(ctx, staff, p.ID, node); err != nil {
		return SeedResult{}, err
	}
	if s.bus == nil { // no bus to relay to (tests): the events wait in the outbox
		return SeedResult{PoolID: p.ID, PoolName: p.Name, PoolRegion: p.Region, Created: true}, nil
	}
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.outbox.Flush(fctx); err != nil {
		s.log.Warn("seed: pool events stay in the outbox until the server relays them", "err", err)
	}
	return SeedResult{PoolID: p.ID, PoolName: p.Name, PoolRegion: p.Region, Created: true}, nil
}
