package kubernetes

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tamarack-ai/tamarack/services/events"
)

// migPrefix starts the resources NVIDIA's device plugin offers for MIG instances under its mixed strategy
// (nvidia.com/mig-1g.10gb).
const migPrefix = "nvidia.com/mig-"

// Nodes is the agent's inventory: the cluster's nodes that offer GPUs (allocatable nvidia.com/gpu or MIG
// instances), each GPU under the model its nvidia.com/gpu.product label maps to (the label itself when no
// entry maps it), cordoned nodes draining, nodes not Ready down. Devices are numbered per node; the device
// plugin, not the testbed, picks which ones a Pod gets.
func (b *Backend) Nodes(ctx context.Context) ([]events.AgentNodeV1, error) {
	list, err := b.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("kubernetes nodes: %w", err)
	}
	out := []events.AgentNodeV1{}
	for _, n := range list.Items {
		product := n.Labels[LabelGPUProduct]
		model := b.opts.Models[product]
		if model == "" {
			model = product
		}
		node := events.AgentNodeV1{Name: n.Name, State: nodeState(&n)}
		if q, ok := n.Status.Allocatable[corev1.ResourceCPU]; ok {
			node.CPUMillis = q.MilliValue()
		}
		if q, ok := n.Status.Allocatable[corev1.ResourceMemory]; ok {
			node.MemoryBytes = q.Value()
		}
		if q, ok := n.Status.Allocatable[ResourceGPU]; ok && model != "" {
			for range q.Value() {
				node.Devices = append(node.Devices, events.AgentDeviceV1{Index: len(node.Devices), GPUModel: model})
			}
		}
		var migs []string
		for r := range n.Status.Allocatable {
			if strings.HasPrefix(string(r), migPrefix) {
				migs = append(migs, string(r))
			}
		}
		slices.Sort(migs)
		for _, r := range migs {
			q := n.Status.Allocatable[corev1.ResourceName(r)]
			for range q.Value() {
				node.Devices = append(node.Devices, events.AgentDeviceV1{Index: len(node.Devices), GPUModel: model,
					MIGProfile: strings.TrimPrefix(r, migPrefix)})
			}
		}
		if len(node.Devices) > 0 {
			out = append(out, node)
		}
	}
	slices.SortFunc(out, func(a, b events.AgentNodeV1) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// nodeState maps a node to the testbed's: not Ready (or unreachable) is down, cordoned is draining.
func nodeState(n *corev1.Node) string {
	ready := false
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			ready = c.Status == corev1.ConditionTrue
		}
	}
	for _, t := range n.Spec.Taints {
		// The node controller's eviction taint: the node stopped answering. (Its NoSchedule taints follow the
		// Ready condition with a lag, so only the condition counts for them.)
		if t.Key == corev1.TaintNodeUnreachable && t.Effect == corev1.TaintEffectNoExecute {
			ready = false
		}
	}
	switch {
	case !ready:
		return events.AgentNodeDown
	case n.Spec.Unschedulable:
		return events.AgentNodeDraining
	}
	return events.AgentNodeReady
}
