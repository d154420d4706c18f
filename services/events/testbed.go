package events

import (
	"time"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
)

// SandboxChangedV1 announces a sandbox state transition; the subject names the new state.
type SandboxChangedV1 struct {
	SandboxID      string    `json:"sandbox_id"`
	OrganizationID string    `json:"organization_id"`
	UserID         string    `json:"user_id"`
	ListingID      string    `json:"listing_id"`
	VendorOrgID    string    `json:"vendor_org_id"`
	PoolID         string    `json:"pool_id"`
	NodeID         string    `json:"node_id,omitempty"`
	GPUModel       string    `json:"gpu_model"`
	GPUCount       int       `json:"gpu_count"`
	State          string    `json:"state"`
	Reason         string    `json:"reason,omitempty"` // stop or failure reason
	ExpiresAt      time.Time `json:"expires_at,omitzero"`
	At             time.Time `json:"at"`
	// On stopped and failed: the total metered time and the sequence of the final usage sample, so that billing
	// releases the hold only once every sample up to LastSeq is charged.
	UsageMillis int64  `json:"usage_millis"`
	LastSeq     uint64 `json:"last_seq"`
}

func (e SandboxChangedV1) Validate() error {
	var c check
	c.need(e.SandboxID != "", "sandbox_id")
	c.need(e.OrganizationID != "", "organization_id")
	c.need(e.State != "", "state")
	c.need(e.UsageMillis >= 0, "usage_millis")
	c.need(set(e.At), "at")
	return c.err("sandbox event")
}

// SandboxUsageV1 is one metered interval of a running sandbox. Event ID = "<sandbox_id>-<seq>". Intervals of a
// sandbox are contiguous: each starts where the previous ended, and their durations sum to the backend-observed
// running time exactly.
type SandboxUsageV1 struct {
	SandboxID      string    `json:"sandbox_id"`
	OrganizationID string    `json:"organization_id"`
	ListingID      string    `json:"listing_id"`
	VendorOrgID    string    `json:"vendor_org_id"`
	PoolID         string    `json:"pool_id"`
	GPUModel       string    `json:"gpu_model"`
	DeviceCount    int       `json:"device_count"`
	Seq            uint64    `json:"seq"` // 1, 2, 3, ...
	Start          time.Time `json:"start"`
	End            time.Time `json:"end"`
	Millis         int64     `json:"millis"` // End - Start in milliseconds
	Final          bool      `json:"final"`
}

func (e SandboxUsageV1) Validate() error {
	var c check
	c.need(e.SandboxID != "", "sandbox_id")
	c.need(e.OrganizationID != "", "organization_id")
	c.need(e.DeviceCount > 0, "device_count")
	c.need(e.Seq > 0, "seq")
	c.need(set(e.Start) && !e.End.Before(e.Start), "start/end")
	c.need(e.Millis >= 0 && e.Millis == e.End.Sub(e.Start).Milliseconds(), "millis")
	return c.err("sandbox.usage")
}

// PoolChangedV1 announces a pool declared or changed, so the marketplace can check that a compute listing's
// pool belongs to its vendor.
type PoolChangedV1 struct {
	PoolID      string    `json:"pool_id"`
	VendorOrgID string    `json:"vendor_org_id"`
	Name        string    `json:"name"`
	Region      string    `json:"region"`
	Backend     string    `json:"backend"`
	GPUModels   []string  `json:"gpu_models"`
	At          time.Time `json:"at"`
}

func (e PoolChangedV1) Validate() error {
	var c check
	c.need(e.PoolID != "", "pool_id")
	c.need(e.VendorOrgID != "", "vendor_org_id")
	c.need(set(e.At), "at")
	return c.err("pool event")
}

// Sandbox states, in the order of DESIGN.md.
var SandboxStates = []string{"requested", "scheduled", "provisioning", "running", "stopping", "stopped", "failed"}

// SandboxSubject returns the subject of transitions into state.
func SandboxSubject(state string) eventbus.Subject[SandboxChangedV1] {
	return eventbus.Subject[SandboxChangedV1]{Stream: StreamTestbed, Name: "tamarack.testbed.sandbox." + state + ".v1"}
}

var (
	SandboxUsage = eventbus.Subject[SandboxUsageV1]{Stream: StreamTestbed, Name: "tamarack.testbed.sandbox.usage.v1"}
	PoolChanged  = eventbus.Subject[PoolChangedV1]{Stream: StreamTestbed, Name: "tamarack.testbed.pool.changed.v1"}
)

// TestbedStream captures the testbed's events.
var TestbedStream = func() eventbus.Stream {
	s := eventbus.Stream{Name: StreamTestbed, Subjects: []string{SandboxUsage.Name, PoolChanged.Name}}
	for _, st := range SandboxStates {
		s.Subjects = append(s.Subjects, SandboxSubject(st).Name)
	}
	return s
}()
