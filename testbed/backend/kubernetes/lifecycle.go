package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/tamarack-ai/tamarack/testbed/backend"
)

var selector = metav1.ListOptions{LabelSelector: LabelSandbox}

// Start creates the sandbox's record, NetworkPolicy and Pod, in that order, and waits up to StartWait for
// the Pod to run; it answers pending after that (the Pod is being scheduled or its image pulled).
func (b *Backend) Start(ctx context.Context, s backend.Spec) (backend.Status, error) {
	if err := s.Validate(); err != nil {
		return backend.Status{}, err
	}
	if err := backend.RequireNoMounts(s, "Kubernetes"); err != nil {
		return backend.Status{}, fmt.Errorf("start %s: %w", s.SandboxID, err)
	}
	pod, np, err := b.podFor(s)
	if err != nil {
		return backend.Status{}, err
	}
	b.watch()
	ns := b.opts.Namespace
	b.mu.Lock()
	b.starting[s.SandboxID] = true
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.starting, s.SandboxID)
		b.mu.Unlock()
	}()
	_, err = b.cs.CoreV1().ConfigMaps(ns).Create(ctx, b.newRecord(s.SandboxID), metav1.CreateOptions{})
	if isExists(err) {
		return backend.Status{}, fmt.Errorf("start %s: %w", s.SandboxID, backend.ErrExists)
	}
	if err != nil {
		return backend.Status{}, fmt.Errorf("start %s: record: %w", s.SandboxID, err)
	}
	undo := func(err error) (backend.Status, error) {
		cx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		b.deleteAll(cx, s.SandboxID, true)
		return backend.Status{}, err
	}
	if _, err := b.cs.NetworkingV1().NetworkPolicies(ns).Create(ctx, np, metav1.CreateOptions{}); err != nil && !isExists(err) {
		return undo(fmt.Errorf("start %s: network policy: %w", s.SandboxID, err))
	}
	created, err := b.cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if isExists(err) { // a Pod of that name the backend has no record of: not ours to take over
		cx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = b.cs.CoreV1().ConfigMaps(ns).Delete(cx, s.SandboxID, metav1.DeleteOptions{})
		return backend.Status{}, fmt.Errorf("start %s: a pod of that name exists: %w", s.SandboxID, backend.ErrExists)
	}
	if err != nil {
		return undo(fmt.Errorf("start %s: pod: %w", s.SandboxID, err))
	}

	// Watch the Pod until it runs, ends, or StartWait passes.
	wait, cancel := context.WithTimeout(ctx, b.opts.StartWait)
	defer cancel()
	st := podStatus(created, false)
	w, err := b.cs.CoreV1().Pods(ns).Watch(wait, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", s.SandboxID).String(),
		ResourceVersion: created.ResourceVersion})
	if err == nil {
		defer w.Stop()
	watching:
		for st.State == backend.StatePending {
			select {
			case ev, ok := <-w.ResultChan():
				if !ok {
					break watching
				}
				if p, isPod := ev.Object.(*corev1.Pod); isPod && ev.Type != watch.Deleted {
					st = podStatus(p, false)
				}
			case <-wait.Done():
				break watching
			}
		}
	}
	if ctx.Err() != nil {
		return undo(ctx.Err())
	}
	if st.State == backend.StatePending {
		return st, nil
	}
	return b.Inspect(ctx, s.SandboxID)
}

// Inspect reads the sandbox's record and Pod from the API server.
func (b *Backend) Inspect(ctx context.Context, id string) (backend.Status, error) {
	b.watch()
	cm, err := b.getRecord(ctx, id)
	if err != nil {
		return backend.Status{}, err
	}
	if st, ended := recordFinal(cm); ended {
		return st, nil
	}
	pod, err := b.cs.CoreV1().Pods(b.opts.Namespace).Get(ctx, id, metav1.GetOptions{})
	if isNotFound(err) {
		pod, err = nil, nil
	}
	if err != nil {
		return backend.Status{}, fmt.Errorf("inspect %s: %w", id, err)
	}
	if cm == nil && pod == nil {
		return backend.Status{}, fmt.Errorf("inspect %s: %w", id, backend.ErrNotFound)
	}
	gone := func(string) bool { return false }
	if pod != nil && pod.Spec.NodeName != "" {
		_, err := b.cs.CoreV1().Nodes().Get(ctx, pod.Spec.NodeName, metav1.GetOptions{})
		nodeGone := isNotFound(err)
		gone = func(string) bool { return nodeGone }
	}
	return b.resolve(ctx, id, cm, pod, gone)
}

// List reads every record and Pod of the namespace from the API server, and the nodes they are bound to.
func (b *Backend) List(ctx context.Context) ([]backend.Status, error) {
	b.watch()
	ns := b.opts.Namespace
	cms, err := b.cs.CoreV1().ConfigMaps(ns).List(ctx, selector)
	if err != nil {
		return nil, fmt.Errorf("list records: %w", err)
	}
	pods, err := b.cs.CoreV1().Pods(ns).List(ctx, selector)
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	records, byPod := map[string]*corev1.ConfigMap{}, map[string]*corev1.Pod{}
	ids := []string{}
	for i := range cms.Items {
		records[cms.Items[i].Name] = &cms.Items[i]
		ids = append(ids, cms.Items[i].Name)
	}
	bound := false
	for i := range pods.Items {
		p := &pods.Items[i]
		byPod[p.Name] = p
		if records[p.Name] == nil {
			ids = append(ids, p.Name)
		}
		bound = bound || p.Spec.NodeName != ""
	}
	nodes := map[string]bool{}
	if bound {
		list, err := b.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("list nodes: %w", err)
		}
		for _, n := range list.Items {
			nodes[n.Name] = true
		}
	}
	slices.Sort(ids)
	out := make([]backend.Status, 0, len(ids))
	for _, id := range ids {
		st, err := b.resolve(ctx, id, records[id], byPod[id], func(n string) bool { return bound && !nodes[n] })
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// resolve is the sandbox's status from its record and Pod (either may be nil, not both). A Pod that ended,
// or vanished without Stop, has its end recorded here, the first time it is seen: the record is what later
// calls answer, whatever happens to the Pod.
func (b *Backend) resolve(ctx context.Context, id string, cm *corev1.ConfigMap, pod *corev1.Pod, nodeGone func(string) bool) (backend.Status, error) {
	if st, ended := recordFinal(cm); ended {
		return st, nil
	}
	if pod == nil {
		if b.isStarting(id) {
			return backend.Status{SandboxID: id, State: backend.StatePending, ExitCode: -1, Message: "creating its pod"}, nil
		}
		return b.finalize(ctx, cm, vanished(cm), nil)
	}
	st := podStatus(pod, pod.Spec.NodeName != "" && nodeGone(pod.Spec.NodeName))
	if st.Ended() {
		if st.Reason == backend.ReasonLost && st.EndedAt.IsZero() {
			// Bound to a node that is gone: the last time it was known alive is the last the backend saw it.
			st.EndedAt = recordTime(cm, keyStarted)
			if st.EndedAt.IsZero() {
				st.EndedAt = st.StartedAt
			}
		}
		final, err := b.finalize(ctx, cm, st, nil)
		if err != nil {
			return backend.Status{}, err
		}
		if st.Reason == backend.ReasonLost { // nothing runs it any more: free what is left of it
			_ = b.cs.CoreV1().Pods(b.opts.Namespace).Delete(ctx, id, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
		}
		return final, nil
	}
	if st.State == backend.StateRunning && cm != nil && cm.Data[keyStarted] == "" {
		if _, err := b.update(ctx, cm, func(c *corev1.ConfigMap) { c.Data[keyStarted] = utc(st.StartedAt).Format(time.RFC3339Nano) }); err != nil {
			b.log.Warn("recording a sandbox's start", "sandbox", id, "err", err)
		}
	}
	return st, nil
}

// vanished is the final status of a sandbox whose Pod is gone and whose end nobody recorded: stopped if a
// Stop had begun, lost if it had run (ended when it was last known running: its start, as nothing later is
// known), failed if it never ran.
func vanished(cm *corev1.ConfigMap) backend.Status {
	st := backend.Status{SandboxID: cm.Name, State: backend.StateExited, ExitCode: -1, StartedAt: recordTime(cm, keyStarted)}
	switch stopping := recordTime(cm, keyStopping); {
	case !stopping.IsZero():
		st.Reason, st.EndedAt, st.Message = backend.ReasonStopped, stopping, "pod deleted by stop"
	case !st.StartedAt.IsZero():
		st.Reason, st.EndedAt, st.Message = backend.ReasonLost, st.StartedAt, "pod vanished without a recorded end"
	default:
		st.Reason, st.EndedAt, st.Message = backend.ReasonFailed, cm.CreationTimestamp.Time, "pod never ran"
		if st.EndedAt.IsZero() {
			st.EndedAt = time.Now()
		}
	}
	return st
}

// Stop records that the sandbox is being stopped (with the tail of its output), deletes its Pod with the
// grace period, waits until the Pod is gone, and records the final status: the Pod's start and end as the
// API server reported them (the end: its container's finish, else when the Pod was seen gone).
func (b *Backend) Stop(ctx context.Context, id string, grace time.Duration) (backend.Status, error) {
	b.watch()
	st, err := b.Inspect(ctx, id)
	if err != nil {
		return backend.Status{}, fmt.Errorf("stop %s: %w", id, err)
	}
	cm, err := b.getRecord(ctx, id)
	if err != nil {
		return backend.Status{}, err
	}
	ns := b.opts.Namespace
	if st.Ended() { // ended by itself (or stopped before): keep its end, free the Pod
		if cm != nil && cm.BinaryData[keyOutput] == nil {
			if out := b.outputTail(ctx, id); out != nil {
				_, _ = b.update(ctx, cm, func(c *corev1.ConfigMap) { c.BinaryData = map[string][]byte{keyOutput: out} })
			}
		}
		b.deleteAll(ctx, id, false)
		return st, nil
	}
	if cm != nil {
		out := b.outputTail(ctx, id)
		cm, err = b.update(ctx, cm, func(c *corev1.ConfigMap) {
			c.Data[keyStopping] = utc(time.Now()).Format(time.RFC3339Nano)
			if out != nil {
				c.BinaryData = map[string][]byte{keyOutput: out}
			}
		})
		if err != nil {
			return backend.Status{}, fmt.Errorf("stop %s: %w", id, err)
		}
	}
	secs := int64(math.Ceil(grace.Seconds()))
	last, err := b.cs.CoreV1().Pods(ns).Get(ctx, id, metav1.GetOptions{})
	if err == nil {
		err = b.cs.CoreV1().Pods(ns).Delete(ctx, id, metav1.DeleteOptions{GracePeriodSeconds: &secs,
			Preconditions: &metav1.Preconditions{UID: &last.UID}})
	}
	if err != nil && !isNotFound(err) {
		return backend.Status{}, fmt.Errorf("stop %s: delete pod: %w", id, err)
	}
	for err == nil { // until the Pod is gone: poll, keeping the last the API server said of it
		select {
		case <-ctx.Done():
			return backend.Status{}, fmt.Errorf("stop %s: the pod is still terminating: %w", id, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
		var p *corev1.Pod
		if p, err = b.cs.CoreV1().Pods(ns).Get(ctx, id, metav1.GetOptions{}); err == nil {
			last = p
		}
	}
	if !isNotFound(err) {
		return backend.Status{}, fmt.Errorf("stop %s: %w", id, err)
	}
	end := backend.Status{SandboxID: id, State: backend.StateExited, Reason: backend.ReasonStopped, ExitCode: -1,
		StartedAt: st.StartedAt, Message: fmt.Sprintf("pod deleted, grace %ds", secs)}
	if last != nil {
		if t := containerStarted(last); !t.IsZero() {
			end.StartedAt = t
		}
		for _, c := range last.Status.ContainerStatuses {
			if t := c.State.Terminated; t != nil {
				end.ExitCode, end.EndedAt = int(t.ExitCode), t.FinishedAt.Time
			}
		}
	}
	if end.StartedAt.IsZero() {
		end.StartedAt = recordTime(cm, keyStarted)
	}
	final, err := b.finalize(ctx, cm, end, nil)
	if err != nil {
		return backend.Status{}, fmt.Errorf("stop %s: %w", id, err)
	}
	b.deleteAll(ctx, id, false)
	return final, nil
}

// Remove deletes an ended sandbox's Pod, NetworkPolicy and record.
func (b *Backend) Remove(ctx context.Context, id string) error {
	st, err := b.Inspect(ctx, id)
	if errors.Is(err, backend.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove %s: %w", id, err)
	}
	if !st.Ended() {
		return fmt.Errorf("remove %s: %w", id, backend.ErrStillRunning)
	}
	return b.deleteAll(ctx, id, true)
}

// deleteAll deletes the sandbox's Pod (at once) and NetworkPolicy, and its record when record is set.
func (b *Backend) deleteAll(ctx context.Context, id string, record bool) error {
	ns := b.opts.Namespace
	var errs []error
	if err := b.cs.CoreV1().Pods(ns).Delete(ctx, id, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil && !isNotFound(err) {
		errs = append(errs, fmt.Errorf("pod: %w", err))
	}
	if err := b.cs.NetworkingV1().NetworkPolicies(ns).Delete(ctx, id, metav1.DeleteOptions{}); err != nil && !isNotFound(err) {
		errs = append(errs, fmt.Errorf("network policy: %w", err))
	}
	if record {
		if err := b.cs.CoreV1().ConfigMaps(ns).Delete(ctx, id, metav1.DeleteOptions{}); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("record: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("delete %s: %w", id, err)
	}
	return nil
}

func (b *Backend) isStarting(id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.starting[id]
}

// watch starts, once, the informer on the namespace's sandbox Pods and the reconcile sweep: at once and
// every Resync, List (which records the end of every Pod that ended, vanished or lost its node). A Pod
// deleted by anyone but Stop has its end recorded as soon as the deletion is seen, with the last time it
// was known alive.
func (b *Backend) watch() {
	b.watchOnce.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		b.stopWatch = cancel
		f := informers.NewSharedInformerFactoryWithOptions(b.cs, b.opts.Resync, informers.WithNamespace(b.opts.Namespace),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = LabelSandbox }))
		inf := f.Core().V1().Pods().Informer()
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				b.podDeleted(ctx, p)
			}
		}})
		f.Start(ctx.Done())
		go func() {
			defer close(b.watching)
			defer f.Shutdown()
			t := time.NewTicker(b.opts.Resync)
			defer t.Stop()
			for {
				if _, err := b.List(ctx); err != nil && ctx.Err() == nil {
					b.log.Warn("reconcile", "err", err)
				}
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	})
}

// podDeleted records the end of a sandbox whose Pod was deleted by someone other than Stop (the node
// lifecycle controller evicting it from a lost node, an operator), from the Pod's last state.
func (b *Backend) podDeleted(ctx context.Context, p *corev1.Pod) {
	cx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cm, err := b.getRecord(cx, p.Name)
	if err != nil || cm == nil || cm.Data[keyStopping] != "" {
		return
	}
	if _, ended := recordFinal(cm); ended {
		return
	}
	st := podStatus(p, false)
	if !st.Ended() {
		st.State, st.Reason, st.Message = backend.StateExited, backend.ReasonLost, "pod deleted outside the platform"
		if st.StartedAt.IsZero() {
			st.Reason, st.Message = backend.ReasonFailed, "pod deleted before it ran"
		}
		switch ready := condition(p, corev1.PodReady); {
		case ready != nil && ready.Status != corev1.ConditionTrue && ready.LastTransitionTime.After(st.StartedAt):
			st.EndedAt = ready.LastTransitionTime.Time
		case p.DeletionTimestamp != nil: // the deletion's request: its time plus the grace it gave
			st.EndedAt = p.DeletionTimestamp.Add(-time.Duration(ptr.Deref(p.DeletionGracePeriodSeconds, 0)) * time.Second)
		}
	}
	if _, err := b.finalize(cx, cm, st, nil); err != nil {
		b.log.Warn("recording a deleted pod's end", "sandbox", p.Name, "err", err)
	}
}
