package testbed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/web"
	"github.com/tamarack-ai/tamarack/services/events"
	"github.com/tamarack-ai/tamarack/testbed/artifact"
	"github.com/tamarack-ai/tamarack/testbed/backend"
)

// A model's or dataset's artifacts in a sandbox ("Try in a sandbox"): the launcher names the listing
// (mount_listing_id); the marketplace decides, as for a download, whether the organisation may have its files
// and hands out signed, expiring links to them (events.ArtifactLinks); the agent that runs the sandbox fetches
// them onto its host, cached by digest, and binds them read-only at /artifacts/<listing>. Only backends that
// bind host directories into their sandboxes can (local; the simulator pretends): a launch on another pool is
// refused (artifacts_mount_unsupported) instead of running without the files.

// ArtifactLinker asks the marketplace for a listing's artifacts with signed links (BusArtifactLinks).
type ArtifactLinker interface {
	ArtifactLinks(ctx context.Context, req events.ArtifactLinksV1) (events.ArtifactLinksReplyV1, error)
}

// BusArtifactLinks asks the marketplace over NATS request/reply (events.ArtifactLinks).
type BusArtifactLinks struct {
	Bus     *eventbus.Bus
	Timeout time.Duration
}

// ArtifactLinks implements ArtifactLinker.
func (b BusArtifactLinks) ArtifactLinks(ctx context.Context, req events.ArtifactLinksV1) (events.ArtifactLinksReplyV1, error) {
	return eventbus.CallWithin(ctx, b.Bus, b.Timeout, events.ArtifactLinks, req)
}

// MountedFile is one artifact a sandbox sees, as it was at launch.
type MountedFile struct {
	Name      string `json:"name"`
	SHA256    string `json:"sha256"`
	SizeBytes int64  `json:"size_bytes"`
}

// mountsArtifacts reports whether sandboxes of a pool on backend kind can see a listing's artifacts: local
// binds the agent's cached copy; the simulator runs nothing and only records the mount. Slurm and Kubernetes
// run sandboxes on machines the agent's files are not on.
func mountsArtifacts(kind string) bool { return kind == "local" || kind == "simulator" }

// artifactLinks asks the marketplace for the artifacts of listingID that c's organisation may have, and turns
// its refusals into the testbed's problems (with how to get access).
func (s *Service) artifactLinks(ctx context.Context, c web.Principal, orgID, listingID string) (events.ArtifactLinksReplyV1, error) {
	if s.links == nil {
		return events.ArtifactLinksReplyV1{}, ErrArtifactsUnavailable.WithDetailMsg("problem.artifacts_unavailable.not_deployed", nil)
	}
	r, err := s.links.ArtifactLinks(ctx, events.ArtifactLinksV1{ListingID: listingID, OrganizationID: orgID, Staff: c.Staff})
	if err == nil {
		return r, nil
	}
	if errors.Is(err, eventbus.ErrNoResponder) {
		return r, ErrArtifactsUnavailable.WithDetailMsg("problem.artifacts_unavailable.timeout", nil)
	}
	p, ok := problem.From(err)
	if !ok {
		return r, err
	}
	switch p.Code {
	case "listing_not_found":
		return r, ErrMountListingNotFound.WithExtra("mount_listing_id", listingID)
	case "no_artifacts":
		return r, ErrNoArtifacts.WithDetail("%s", p.Detail).WithExtra("mount_listing_id", listingID)
	case "access_required":
		key := "problem.access_required.mount_order"
		if gated, _ := p.Extra["gated"].(bool); gated {
			key = "problem.access_required.mount_gated"
		}
		return r, ErrArtifactsAccessRequired.WithDetailMsg(key, problem.Args{"Listing": listingID}).WithExtra("mount_listing_id", listingID)
	}
	return r, err
}

// checkMount is the launch's decision on mount_listing_id: a pool that can mount, and access to the listing's
// files now. It returns the files as they are now, recorded with the sandbox.
func (s *Service) checkMount(ctx context.Context, c web.Principal, pool Pool, listingID string) (string, error) {
	if !mountsArtifacts(pool.Backend) {
		return "", ErrMountUnsupported.WithDetailMsg("problem.artifacts_mount_unsupported.pool", problem.Args{"Pool": pool.Name, "Backend": pool.Backend}).WithExtra("pool_id", pool.ID).WithExtra("backend", pool.Backend)
	}
	r, err := s.artifactLinks(ctx, c, c.OrgID, listingID)
	if err != nil {
		return "", err
	}
	files := make([]MountedFile, 0, len(r.Artifacts))
	for _, a := range r.Artifacts {
		files = append(files, MountedFile{Name: a.Name, SHA256: a.SHA256, SizeBytes: a.SizeBytes})
	}
	b, _ := json.Marshal(files)
	return string(b), nil
}

// MountedFiles are the files sb was launched with (none when it mounts nothing).
func (sb Sandbox) MountedFiles() []MountedFile {
	var out []MountedFile
	_ = json.Unmarshal([]byte(sb.Mounts), &out)
	return out
}

// agentMounts are the mounts of a provisioning sandbox with fresh signed links: access is asked again of the
// marketplace (an entitlement lost since the launch ends the start), for the launcher's organisation.
func (s *Service) agentMounts(ctx context.Context, sb Sandbox) ([]events.AgentMountV1, error) {
	if sb.MountListingID == "" {
		return nil, nil
	}
	r, err := s.artifactLinks(ctx, web.Principal{OrgID: sb.OrgID, UserID: sb.UserID}, sb.OrgID, sb.MountListingID)
	if err != nil {
		return nil, err
	}
	m := events.AgentMountV1{ListingID: sb.MountListingID, Target: artifact.Target(sb.MountListingID)}
	for _, a := range r.Artifacts {
		m.Files = append(m.Files, events.AgentArtifactV1{Name: a.Name, SHA256: a.SHA256, SizeBytes: a.SizeBytes, URL: a.URL})
	}
	return []events.AgentMountV1{m}, nil
}

// mountInProcess gives spec the mounts of sb for a backend this process runs itself: the cache fetches the
// files (local); the simulator runs nothing and is only told where they would be.
func (s *Service) mountInProcess(ctx context.Context, sb Sandbox, spec backend.Spec) (backend.Spec, error) {
	ms, err := s.agentMounts(ctx, sb)
	if err != nil || len(ms) == 0 {
		return spec, err
	}
	for _, m := range ms {
		switch {
		case sb.Backend == "simulator":
			spec.Mounts = append(spec.Mounts, backend.Mount{Source: "/simulated" + m.Target, Target: m.Target})
		case s.artifacts == nil:
			return spec, fmt.Errorf("%w: this process has no artifacts cache for the %s backend", backend.ErrNotSupported, sb.Backend)
		default:
			bm, err := s.artifacts.Mount(ctx, sb.ID, m)
			if err != nil {
				s.releaseArtifacts(sb.ID)
				return spec, err
			}
			spec.Mounts = append(spec.Mounts, bm)
		}
	}
	return spec, nil
}

// releaseArtifacts drops an ended sandbox's use of this process's artifacts cache.
func (s *Service) releaseArtifacts(id string) {
	if s.artifacts == nil {
		return
	}
	if err := s.artifacts.Release(id); err != nil {
		s.log.Warn("artifacts of an ended sandbox not released", "sandbox", id, "err", err)
	}
}
