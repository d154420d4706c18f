package agent

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/services/events"
	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/image"
)

// Conversions between the backend contract and the protocol's payloads, and between errors and the
// problems that carry them across NATS. Both ends use them, so a sentinel that leaves as a code comes back
// as the same sentinel.

func toStatusV1(s backend.Status) events.AgentStatusV1 {
	return events.AgentStatusV1{SandboxID: s.SandboxID, State: string(s.State), StartedAt: s.StartedAt, EndedAt: s.EndedAt,
		ExitCode: s.ExitCode, Reason: s.Reason, Message: s.Message}
}

// FromStatusV1 is a status as the agent's backend observed it.
func FromStatusV1(s events.AgentStatusV1) backend.Status {
	return backend.Status{SandboxID: s.SandboxID, State: backend.State(s.State), StartedAt: s.StartedAt.UTC(), EndedAt: s.EndedAt.UTC(),
		ExitCode: s.ExitCode, Reason: s.Reason, Message: s.Message}
}

// ToStartV1 is the start request of spec; img and imgSettings name the image the agent prepares first.
func ToStartV1(spec backend.Spec, img string, imgSettings map[string]string) events.AgentStartV1 {
	r := events.AgentStartV1{SandboxID: spec.SandboxID, Command: slices.Clone(spec.Command), Env: maps.Clone(spec.Env),
		Network: spec.Network, Ports: slices.Clone(spec.Ports), MemoryBytes: spec.Limits.MemoryBytes,
		CPUMillis: spec.Limits.CPUMillis, Pids: spec.Limits.Pids, LogBytes: spec.Limits.LogBytes,
		DurationMS: spec.Duration.Milliseconds(), Settings: maps.Clone(spec.Settings), Image: img, ImageSettings: maps.Clone(imgSettings)}
	for _, d := range spec.Devices {
		r.Devices = append(r.Devices, events.AgentDeviceRefV1{Index: d.Index, UUID: d.UUID, Model: d.Model,
			Paths: slices.Clone(d.Paths), CDIName: d.CDIName})
	}
	return r
}

func fromStartV1(r events.AgentStartV1) backend.Spec {
	s := backend.Spec{SandboxID: r.SandboxID, Command: r.Command, Env: r.Env, Network: r.Network, Ports: r.Ports,
		Limits:   backend.Limits{MemoryBytes: r.MemoryBytes, CPUMillis: r.CPUMillis, Pids: r.Pids, LogBytes: r.LogBytes},
		Duration: time.Duration(r.DurationMS) * time.Millisecond, Settings: r.Settings}
	for _, d := range r.Devices {
		s.Devices = append(s.Devices, backend.Device{Index: d.Index, UUID: d.UUID, Model: d.Model, Paths: d.Paths, CDIName: d.CDIName})
	}
	return s
}

// ErrStartCancelled: a stop of the same sandbox cancelled its start (while its image was prepared, or
// before the backend ran it). Client.Start returns it.
var ErrStartCancelled = errors.New("the sandbox was stopped before it started")

// ErrImageUnavailable: the agent could not obtain the sandbox's image (registry unreachable or refusing, a
// built-in image not seeded, the pull timed out); the other image errors keep their image sentinels.
var ErrImageUnavailable = errors.New("image could not be obtained")

// ErrArtifactsUnavailable: the agent could not fetch a listing's artifacts onto its host (link refused or
// expired, the bytes not matching their digest, the platform unreachable).
var ErrArtifactsUnavailable = errors.New("artifacts could not be obtained")

// codes maps each sentinel to the problem that carries it; the order decides for errors wrapping several.
var codes = []struct {
	err    error
	status int
	code   string
}{
	{backend.ErrInvalidSpec, http.StatusUnprocessableEntity, "invalid_spec"},
	{backend.ErrNotFound, http.StatusNotFound, "sandbox_not_found"},
	{backend.ErrNotRunning, http.StatusConflict, "sandbox_not_running"},
	{backend.ErrStillRunning, http.StatusConflict, "sandbox_still_running"},
	{backend.ErrExists, http.StatusConflict, "sandbox_exists"},
	{ErrStartCancelled, http.StatusConflict, "start_cancelled"},
	{image.ErrNotPinned, http.StatusUnprocessableEntity, "image_not_pinned"},
	{image.ErrNotAllowed, http.StatusUnprocessableEntity, "image_not_allowed"},
	{image.ErrVerify, http.StatusUnprocessableEntity, "image_verify"},
	{image.ErrUnsafe, http.StatusUnprocessableEntity, "image_unsafe"},
	{image.ErrUnsupported, http.StatusUnprocessableEntity, "image_unsupported"},
	{image.ErrTooLarge, http.StatusUnprocessableEntity, "image_too_large"},
	{ErrImageUnavailable, http.StatusBadGateway, "image_unavailable"},
	{ErrArtifactsUnavailable, http.StatusBadGateway, "artifacts_unavailable"},
	{backend.ErrUnavailable, http.StatusServiceUnavailable, "backend_unavailable"},
	{backend.ErrNotSupported, http.StatusNotImplemented, "not_supported"},
}

// toProblem is the problem an agent answers for err. Errors that are none of the sentinels are the backend's
// own failures (a runtime error, an image registry refusing): their text goes back, for the sandbox's owner.
func toProblem(err error) error {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return problem.New(c.status, c.code, c.err.Error()).WithDetail("%v", err)
		}
	}
	return problem.New(http.StatusBadGateway, "backend_failed", "The backend failed.").WithDetail("%v", err)
}

// fromProblem turns an agent's answer back into the sentinel it carries, with the agent's words.
func fromProblem(err error) error {
	p, ok := problem.From(err)
	if !ok {
		return err
	}
	for _, c := range codes {
		if c.code == p.Code {
			return fmt.Errorf("%w: %s", c.err, trimSentinel(p.Detail, c.err))
		}
	}
	return errors.New(p.Detail)
}

// trimSentinel drops a leading copy of the sentinel's text, which the agent's detail starts with when the
// error was the sentinel wrapped once.
func trimSentinel(detail string, sentinel error) string {
	d, _ := strings.CutPrefix(detail, sentinel.Error()+": ")
	return d
}
