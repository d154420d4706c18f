package slurm

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/tamarack-ai/tamarack/services/events"
)

// Nodes is the agent's inventory: the partition's nodes (every node when no partition is set) with their
// GPUs, GRES types mapped back to the testbed's models, and drained or down nodes marked so. Devices are
// numbered per node in the order of the node's GRES; Slurm, not the testbed, picks which ones a job gets.
func (b *Backend) Nodes(ctx context.Context) ([]events.AgentNodeV1, error) {
	r, err := b.api.SlurmV0038GetNodesWithResponse(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("slurm nodes: %w", err)
	}
	if r.StatusCode() != http.StatusOK || r.JSON200 == nil || r.JSON200.Nodes == nil {
		return nil, fmt.Errorf("slurm nodes: %w", slurmError(r.StatusCode(), r.Body))
	}
	models := map[string]string{}
	for model, typ := range b.opts.GRES {
		models[typ] = model
	}
	out := []events.AgentNodeV1{}
	for _, n := range *r.JSON200.Nodes {
		if b.opts.Partition != "" && (n.Partitions == nil || !slices.Contains(*n.Partitions, b.opts.Partition)) {
			continue
		}
		node := events.AgentNodeV1{Name: deref(n.Name), CPUMillis: int64(deref(n.Cpus)) * 1000,
			MemoryBytes: int64(deref(n.RealMemory)) << 20, State: nodeState(deref(n.State), deref(n.StateFlags))}
		for _, g := range gpus(deref(n.Gres)) {
			model := g.typ
			if m := models[g.typ]; m != "" {
				model = m
			}
			for range g.count {
				node.Devices = append(node.Devices, events.AgentDeviceV1{Index: len(node.Devices), GPUModel: model})
			}
		}
		out = append(out, node)
	}
	return out, nil
}

// nodeState maps a node's Slurm state to the testbed's: down (or not responding) nodes are down, drained
// and draining ones take no new sandboxes.
func nodeState(state string, flags []string) string {
	st := strings.ToUpper(state)
	has := func(f string) bool {
		return slices.ContainsFunc(flags, func(x string) bool { return strings.EqualFold(x, f) })
	}
	switch {
	case st == "DOWN" || st == "FUTURE" || st == "UNKNOWN" || has("NOT_RESPONDING") || has("POWERED_DOWN"):
		return events.AgentNodeDown
	case st == "DRAINED" || has("DRAIN") || has("DRAINING") || has("DRAINED") || has("MAINTENANCE") || has("RESERVED"):
		return events.AgentNodeDraining
	}
	return events.AgentNodeReady
}

type gres struct {
	typ   string
	count int
}

// gpus reads a node's gres string ("gpu:h100:4(S:0-1),gpu:a100:2,shard:8") into its GPUs by type; an
// untyped "gpu:4" has type "gpu".
func gpus(s string) []gres {
	var out []gres
	for _, part := range strings.Split(s, ",") {
		part, _, _ = strings.Cut(part, "(")
		f := strings.Split(strings.TrimSpace(part), ":")
		if len(f) < 2 || f[0] != "gpu" {
			continue
		}
		typ, count := "gpu", f[len(f)-1]
		if len(f) >= 3 {
			typ = f[1]
		}
		n, err := strconv.Atoi(count)
		if err != nil || n < 1 {
			continue
		}
		out = append(out, gres{typ: typ, count: n})
	}
	return out
}
