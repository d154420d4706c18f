package testbed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/web"
	"github.com/tamarack-ai/tamarack/testbed/agent"
	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/image"
)

// imageSettingsPrefix marks the pool settings that say which images a pool runs (image.SettingAllow) and
// with which registry credentials (image.SettingAuthPrefix): programme staff keep them, not the vendor.
const imageSettingsPrefix = "images."

// checkImageSettings refuses a non-staff change to a pool's image settings, and image settings that do not
// parse (every bad entry at once).
func checkImageSettings(c web.Principal, before, after map[string]string) error {
	if !c.Staff && !maps.Equal(imageSettings(before), imageSettings(after)) {
		return ErrImageSettingsStaff
	}
	if _, _, err := image.FromSettings(after); err != nil {
		var f problem.Fields
		f.AddMsg("settings", "invalid", "field.text.image_settings", problem.Args{"Cause": err.Error()})
		return f.Err()
	}
	return nil
}

func imageSettings(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if strings.HasPrefix(k, imageSettingsPrefix) {
			out[k] = v
		}
	}
	return out
}

// Images gives the root filesystem of a template's image on this host: a built-in name ("shell") or a
// pinned reference, under the pool's allow-list and credentials (its images.* settings). *image.Provider
// implements it. Rootfs may take minutes on first use (pull and unpack); progress is called on the pulling
// goroutine and must only store what it is given.
type Images interface {
	Rootfs(ctx context.Context, img string, poolSettings map[string]string, progress func(image.Progress)) (image.Rootfs, error)
}

// runsImages reports whether a backend kind's sandboxes start from a root filesystem prepared from their
// template's (or try-it listing's) image: by this process for an in-process backend, by the agent for an
// agent's (local: on its host; Slurm: on the login node, into a directory the compute nodes share). The
// simulator runs nothing; Kubernetes pulls on its own nodes and will be handed the reference instead.
func runsImages(kind string) bool { return kind == "local" || kind == "slurm" }

// pullsImages reports whether a backend kind's nodes pull sandboxes' images themselves: its agent is handed
// the pinned reference (Spec.Image), and a sandbox with no command runs the image's entrypoint.
func pullsImages(kind string) bool { return kind == "kubernetes" }

// progressInterval bounds the writes of a sandbox's pull progress: at most one per interval (4 a second),
// whatever the rate of the pull's callbacks.
const progressInterval = 250 * time.Millisecond

// errStopRequested and errShutdown are why a sandbox's pull was cancelled.
var (
	errStopRequested = errors.New("the sandbox was stopped while its image was being pulled")
	errShutdown      = errors.New("the testbed is shutting down")
)

// trackPull returns the context of a sandbox's coming image pull, which cancelPull (a stop) and the end of
// Run (cancelPulls) cancel, and the function that forgets it. The provisioning takes it before it moves the
// sandbox to provisioning, so a stop committed after that move always finds it.
func (s *Service) trackPull(id string) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	s.mu.Lock()
	if s.closing {
		cancel(errShutdown)
	}
	s.pulls[id] = cancel
	s.mu.Unlock()
	return ctx, func() {
		s.mu.Lock()
		delete(s.pulls, id)
		s.mu.Unlock()
		cancel(nil)
	}
}

// pullImage gets the root filesystem of a provisioning sandbox's image, showing its progress on the
// sandbox. It holds no transaction and no lock while it waits: ctx (from trackPull) is cancelled by a stop
// of the sandbox or the end of Run, and PullTimeout bounds it. The pull itself goes on in the image cache for
// anyone else waiting for the same image.
func (s *Service) pullImage(ctx context.Context, id, img string, settings map[string]string) (image.Rootfs, error) {
	tctx, tcancel := context.WithTimeoutCause(ctx, s.opts.PullTimeout,
		fmt.Errorf("not pulled and unpacked within %s", s.opts.PullTimeout))
	defer tcancel()
	w := s.newProgressWriter(id)
	root, err := s.images.Rootfs(tctx, img, settings, w.report)
	w.close()
	if err != nil && tctx.Err() != nil {
		err = fmt.Errorf("%w: %w", context.Cause(tctx), err)
	}
	return root, err
}

// cancelPull cancels the image pull of a sandbox, if one is in progress in this process.
func (s *Service) cancelPull(id string, cause error) {
	s.mu.Lock()
	cancel := s.pulls[id]
	s.mu.Unlock()
	if cancel != nil {
		cancel(cause)
	}
}

// cancelPulls cancels every pull in progress, and those about to start.
func (s *Service) cancelPulls(cause error) {
	s.mu.Lock()
	s.closing = true
	cancels := make([]context.CancelCauseFunc, 0, len(s.pulls))
	for _, c := range s.pulls {
		cancels = append(cancels, c)
	}
	s.mu.Unlock()
	for _, c := range cancels {
		c(cause)
	}
}

// progressWriter writes a provisioning sandbox's pull progress at most once per progressInterval, from a
// goroutine of its own: report only keeps the newest value.
type progressWriter struct {
	s    *Service
	id   string
	mu   sync.Mutex
	next *Progress
	kick chan struct{}
	done chan struct{}
	wg   sync.WaitGroup
}

func (s *Service) newProgressWriter(id string) *progressWriter {
	w := &progressWriter{s: s, id: id, kick: make(chan struct{}, 1), done: make(chan struct{})}
	w.wg.Add(1)
	go w.run()
	return w
}

// report is the pull's progress callback.
func (w *progressWriter) report(p image.Progress) {
	var phase string
	switch p.Phase {
	case image.PhasePulling:
		phase = PhasePulling
	case image.PhaseUnpacking:
		phase = PhaseUnpacking
	default:
		return // ready: the provisioning writes its own next step (starting)
	}
	_, digest, _ := strings.Cut(p.Ref, "@")
	w.mu.Lock()
	w.next = &Progress{Phase: phase, Done: p.Done, Total: p.Total, Digest: digest}
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *progressWriter) run() {
	defer w.wg.Done()
	for {
		select {
		case <-w.done:
			return
		case <-w.kick:
		}
		w.mu.Lock()
		p := w.next
		w.next = nil
		w.mu.Unlock()
		if p != nil {
			if _, err := w.s.setProgress(context.Background(), w.id, *p, nil); err != nil {
				w.s.log.Warn("record sandbox image progress", "sandbox", w.id, "err", err)
			}
		}
		select {
		case <-w.done:
			return
		case <-time.After(progressInterval):
		}
	}
}

// close stops the writer and waits for a write in flight.
func (w *progressWriter) close() {
	close(w.done)
	w.wg.Wait()
}

// setProgress records a provisioning sandbox's progress (and more columns, if given) in one statement,
// only while it is still provisioning; ok is false when it no longer is (stopped or ended meanwhile).
func (s *Service) setProgress(ctx context.Context, id string, p Progress, more map[string]any) (ok bool, err error) {
	now := s.clock.Now()
	p.AtMS = now.UnixMilli()
	b, _ := json.Marshal(p)
	cols := map[string]any{"progress": string(b), "updated_at": stamp(now)}
	maps.Copy(cols, more)
	return setProvisioning(s.db.WithContext(ctx), id, cols)
}

// imageFailure says why a sandbox's image could not be used, as a stop reason and a message for its owner.
func imageFailure(img string, err error) (reason, msg string) {
	switch {
	case errors.Is(err, image.ErrNotPinned), errors.Is(err, image.ErrNotAllowed):
		return ReasonImageNotAllowed, fmt.Sprintf("image %s is not allowed on this pool: %v", img, err)
	case errors.Is(err, image.ErrVerify), errors.Is(err, image.ErrUnsafe), errors.Is(err, image.ErrUnsupported),
		errors.Is(err, image.ErrTooLarge):
		return ReasonImageInvalid, fmt.Sprintf("image %s was refused: %v", img, err)
	}
	return ReasonImageUnavailable, fmt.Sprintf("image %s could not be obtained: %v", img, err)
}

// withImage makes spec start from root, as the agents do (agent.WithImage): the in-process path of tests and
// of backends in this process.
func withImage(spec backend.Spec, root image.Rootfs) backend.Spec { return agent.WithImage(spec, root) }

// ImageCache is what the testbed needs of this host's image cache beyond Images to keep it within its budget;
// *image.Provider implements it. Prune lists what to keep under the cache's lock (see image.Cache.PruneFunc:
// a sandbox's row names its image before its image is asked for) and answers image.ErrBusy during a pull.
type ImageCache interface {
	Usage() (image.Usage, error)
	Prune(keep func() ([]string, error)) (image.PruneReport, error)
}

// ImagesInUse lists what this deployment's sandboxes and pools need on a host's image cache: the image (a
// built-in name or a pinned reference) and unpacked digest of every sandbox that has not ended, and every
// image that a pool's allow-list pins by digest. `tamarack images prune` reads it from the database as the
// running testbed does.
func ImagesInUse(ctx context.Context, db *gorm.DB) ([]string, error) {
	live, err := liveSandboxImages(db.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, sb := range live {
		for _, v := range []string{sb.Image, sb.ImageDigest} {
			if v != "" {
				out = append(out, v)
			}
		}
	}
	pools, err := allPoolSettings(db.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	for _, p := range pools {
		policy, _, _ := image.FromSettings(p.SettingsMap()) // bad entries are left out; the good ones still count
		for _, e := range policy.Allow {
			if strings.Contains(e, "@") {
				out = append(out, e)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// PruneResult says what a pruning round found and did.
type PruneResult struct {
	Usage  image.Usage       // the cache before the round
	Pruned bool              // over the budget, and pruned
	Report image.PruneReport // what went
}

// PruneImages measures this host's image cache and, when it holds more than budget bytes (0: whatever it
// holds), removes every unpacked image and cached layer that no live sandbox uses and that is neither built
// in nor pinned by digest in a pool's allow-list (ImagesInUse, read under the cache's lock). It answers
// image.ErrBusy while an image is being pulled into the cache; the next round prunes.
func (s *Service) PruneImages(ctx context.Context, budget int64) (PruneResult, error) {
	ic, ok := s.images.(ImageCache)
	if !ok {
		return PruneResult{}, errors.New("this testbed has no image cache to prune")
	}
	u, err := ic.Usage()
	if err != nil {
		return PruneResult{}, fmt.Errorf("image cache usage: %w", err)
	}
	res := PruneResult{Usage: u}
	if u.Bytes <= budget {
		return res, nil
	}
	rep, err := ic.Prune(func() ([]string, error) { return ImagesInUse(ctx, s.db) })
	if err != nil {
		return res, err
	}
	res.Pruned, res.Report = true, rep
	return res, nil
}

// pruneImagesLoop keeps the image cache within Options.ImageCacheBytes, looking every PruneInterval.
func (s *Service) pruneImagesLoop(ctx context.Context) error {
	t := time.NewTicker(s.opts.PruneInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		res, err := s.PruneImages(ctx, s.opts.ImageCacheBytes)
		switch {
		case errors.Is(err, image.ErrBusy):
			s.log.Info("image cache over its budget, but an image is being pulled into it: pruning at the next round",
				"bytes", res.Usage.Bytes, "budget", s.opts.ImageCacheBytes)
		case err != nil:
			if ctx.Err() == nil {
				s.log.Warn("image cache prune", "err", err)
			}
		case res.Pruned:
			s.log.Info("image cache pruned", "bytes_before", res.Usage.Bytes, "budget", s.opts.ImageCacheBytes,
				"roots_removed", len(res.Report.Roots), "layers_removed", res.Report.Layers, "bytes_removed", res.Report.Bytes,
				"images", res.Report.Roots)
		}
	}
}
