package kubernetes

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/tamarack-ai/tamarack/testbed/backend"
)

// Container waiting reasons that never resolve by themselves: the sandbox failed to start.
var fatalWaiting = map[string]bool{"InvalidImageName": true, "CreateContainerConfigError": true,
	"CreateContainerError": true, "RunContainerError": true, "ErrImageNeverPull": true}

// podStatus maps a Pod as the API server reports it to the sandbox's status. nodeGone says the node it was
// bound to no longer exists. An ended status's EndedAt is zero when the Pod does not say when it ended (the
// caller records the time it saw the end).
func podStatus(p *corev1.Pod, nodeGone bool) backend.Status {
	st := backend.Status{SandboxID: p.Name, ExitCode: -1, StartedAt: containerStarted(p)}
	var term *corev1.ContainerStateTerminated
	var waiting *corev1.ContainerStateWaiting
	for _, c := range p.Status.ContainerStatuses {
		if t := c.State.Terminated; t != nil {
			term = t
		} else if c.LastTerminationState.Terminated != nil && term == nil {
			term = c.LastTerminationState.Terminated
		}
		if c.State.Waiting != nil {
			waiting = c.State.Waiting
		}
	}
	ended := func(reason, msg string) backend.Status {
		st.State, st.Reason, st.Message = backend.StateExited, reason, msg
		if term != nil {
			st.ExitCode = int(term.ExitCode)
			st.EndedAt = term.FinishedAt.Time
		} else if ready := condition(p, corev1.PodReady); ready != nil && ready.Status != corev1.ConditionTrue &&
			!st.StartedAt.IsZero() && ready.LastTransitionTime.After(st.StartedAt) {
			// The moment it stopped being ready is the last it was known alive.
			st.EndedAt = ready.LastTransitionTime.Time
		}
		if reason == backend.ReasonFailed {
			st.StartedAt, st.EndedAt = time.Time{}, time.Time{}
		}
		return st
	}
	switch p.Status.Phase {
	case corev1.PodPending, "":
		if waiting != nil && fatalWaiting[waiting.Reason] {
			return ended(backend.ReasonFailed, fmt.Sprintf("%s: %s", waiting.Reason, waiting.Message))
		}
		st.State, st.StartedAt = backend.StatePending, time.Time{}
		switch c := condition(p, corev1.PodScheduled); {
		case p.Spec.NodeName != "" && waiting != nil:
			st.Message = fmt.Sprintf("scheduled on %s: %s %s", p.Spec.NodeName, waiting.Reason, waiting.Message)
		case p.Spec.NodeName != "":
			st.Message = "scheduled on " + p.Spec.NodeName
		case c != nil && c.Status == corev1.ConditionFalse:
			st.Message = fmt.Sprintf("waiting for a node: %s", c.Message)
		default:
			st.Message = "waiting for a node"
		}
		if nodeGone && p.Spec.NodeName != "" {
			return ended(backend.ReasonLost, "node "+p.Spec.NodeName+" is gone")
		}
		return st
	case corev1.PodRunning:
		if nodeGone {
			return ended(backend.ReasonLost, "node "+p.Spec.NodeName+" is gone")
		}
		st.State, st.Message = backend.StateRunning, "on node "+p.Spec.NodeName
		if st.StartedAt.IsZero() && p.Status.StartTime != nil {
			st.StartedAt = p.Status.StartTime.Time
		}
		return st
	case corev1.PodSucceeded, corev1.PodFailed:
		if st.StartedAt.IsZero() && term == nil {
			return ended(backend.ReasonFailed, podMessage(p, "the pod failed before its container ran"))
		}
		switch p.Status.Reason {
		case "Evicted", "Preempting", "DeadlineExceeded", "UnexpectedAdmissionError", "OutOfcpu", "OutOfmemory":
			return ended(backend.ReasonKilled, podMessage(p, ""))
		case "NodeLost", "NodeShutdown", "Terminated", "NodeAffinity":
			return ended(backend.ReasonLost, podMessage(p, ""))
		}
		if term != nil && term.Reason == "OOMKilled" {
			return ended(backend.ReasonOOMKilled, "OOMKilled at the memory limit")
		}
		if term != nil {
			return ended(backend.ReasonExited, strings.TrimSpace(term.Reason+" "+term.Message))
		}
		return ended(backend.ReasonKilled, podMessage(p, "the pod failed"))
	}
	st.State, st.StartedAt, st.Message = backend.StateUnknown, time.Time{}, "pod phase "+string(p.Status.Phase)
	return st
}

// containerStarted is when the sandbox's container started, as the kubelet reported it.
func containerStarted(p *corev1.Pod) time.Time {
	for _, c := range p.Status.ContainerStatuses {
		switch {
		case c.State.Running != nil && !c.State.Running.StartedAt.IsZero():
			return c.State.Running.StartedAt.Time
		case c.State.Terminated != nil && !c.State.Terminated.StartedAt.IsZero():
			return c.State.Terminated.StartedAt.Time
		}
	}
	return time.Time{}
}

func condition(p *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

func podMessage(p *corev1.Pod, fallback string) string {
	if m := strings.TrimSpace(p.Status.Reason + ": " + p.Status.Message); m != ":" {
		return strings.TrimSuffix(strings.TrimPrefix(m, ": "), ":")
	}
	return fallback
}
