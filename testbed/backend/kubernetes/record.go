package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tamarack-ai/tamarack/testbed/backend"
)

// A sandbox's record is a ConfigMap named for it, created before its Pod. Its keys:
const (
	keyFinal    = "final"    // the final status (JSON), once the sandbox has ended; never changed after
	keyStarted  = "started"  // when the Pod's container started (RFC 3339), once seen
	keyStopping = "stopping" // when Stop began (RFC 3339): a Pod gone after it was stopped, not lost
	keyOutput   = "output"   // (binaryData) the tail of the sandbox's output, kept when its Pod is deleted
)

// finalJSON is a final status in a record.
type finalJSON struct {
	State     backend.State `json:"state"`
	StartedAt time.Time     `json:"started_at,omitzero"`
	EndedAt   time.Time     `json:"ended_at,omitzero"`
	ExitCode  int           `json:"exit_code"`
	Reason    string        `json:"reason"`
	Message   string        `json:"message,omitempty"`
}

func (b *Backend) newRecord(id string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: id, Namespace: b.opts.Namespace,
		Labels: map[string]string{LabelSandbox: id, LabelManagedBy: managedBy}}, Data: map[string]string{}}
}

// getRecord returns the sandbox's record, nil when it has none.
func (b *Backend) getRecord(ctx context.Context, id string) (*corev1.ConfigMap, error) {
	cm, err := b.cs.CoreV1().ConfigMaps(b.opts.Namespace).Get(ctx, id, metav1.GetOptions{})
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("record of %s: %w", id, err)
	}
	return cm, nil
}

func recordFinal(cm *corev1.ConfigMap) (backend.Status, bool) {
	if cm == nil || cm.Data[keyFinal] == "" {
		return backend.Status{}, false
	}
	var f finalJSON
	if err := json.Unmarshal([]byte(cm.Data[keyFinal]), &f); err != nil {
		return backend.Status{}, false
	}
	return backend.Status{SandboxID: cm.Name, State: f.State, StartedAt: utc(f.StartedAt), EndedAt: utc(f.EndedAt),
		ExitCode: f.ExitCode, Reason: f.Reason, Message: f.Message}, true
}

func recordTime(cm *corev1.ConfigMap, key string) time.Time {
	if cm == nil {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC3339Nano, cm.Data[key])
	return utc(t)
}

// update changes the record with edit and writes it; on a conflict it reads it again and retries, unless
// the record has meanwhile been given a final status (which is never overwritten).
func (b *Backend) update(ctx context.Context, cm *corev1.ConfigMap, edit func(*corev1.ConfigMap)) (*corev1.ConfigMap, error) {
	for range 5 {
		if _, ended := recordFinal(cm); ended {
			return cm, nil
		}
		next := cm.DeepCopy()
		if next.Data == nil {
			next.Data = map[string]string{}
		}
		edit(next)
		out, err := b.cs.CoreV1().ConfigMaps(b.opts.Namespace).Update(ctx, next, metav1.UpdateOptions{})
		if err == nil {
			return out, nil
		}
		if !apierrors.IsConflict(err) {
			return nil, fmt.Errorf("record of %s: %w", cm.Name, err)
		}
		if cm, err = b.getRecord(ctx, cm.Name); err != nil {
			return nil, err
		}
		if cm == nil {
			return nil, fmt.Errorf("record of %s: %w", next.Name, backend.ErrNotFound)
		}
	}
	return nil, fmt.Errorf("record of %s: too many concurrent updates", cm.Name)
}

// finalize records st as the sandbox's final status and returns what the record holds: st, or the final
// status another call recorded first. An end time not known is the time it was observed; never before the
// start.
func (b *Backend) finalize(ctx context.Context, cm *corev1.ConfigMap, st backend.Status, output []byte) (backend.Status, error) {
	st.StartedAt, st.EndedAt = utc(st.StartedAt), utc(st.EndedAt)
	if st.EndedAt.IsZero() {
		st.EndedAt = utc(time.Now())
	}
	if st.EndedAt.Before(st.StartedAt) {
		st.EndedAt = st.StartedAt
	}
	if cm == nil { // a Pod without a record (not started by this backend's Start): nothing to keep it in
		return st, nil
	}
	raw, err := json.Marshal(finalJSON{State: st.State, StartedAt: st.StartedAt, EndedAt: st.EndedAt, ExitCode: st.ExitCode,
		Reason: st.Reason, Message: st.Message})
	if err != nil {
		return backend.Status{}, err
	}
	out, err := b.update(ctx, cm, func(c *corev1.ConfigMap) {
		c.Data[keyFinal] = string(raw)
		if output != nil {
			c.BinaryData = map[string][]byte{keyOutput: output}
		}
	})
	if err != nil {
		return backend.Status{}, err
	}
	final, _ := recordFinal(out)
	return final, nil
}

// utc drops the monotonic reading and the zone, so that a status read back from a record equals the one
// returned when it was written.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Round(0)
}

func isNotFound(err error) bool  { return err != nil && apierrors.IsNotFound(err) }
func isForbidden(err error) bool { return err != nil && apierrors.IsForbidden(err) }
func isExists(err error) bool    { return err != nil && apierrors.IsAlreadyExists(err) }
