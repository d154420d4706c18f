package slurm

import (
	"fmt"
	"testing"

	"github.com/tamarack-ai/tamarack/services/events"
)

// What slurmrestd 22.05 reports for a node (state, state_flags) and what the testbed is told.
func TestNodeState(t *testing.T) {
	for _, c := range []struct {
		state string
		flags []string
		want  string
	}{
		{"idle", nil, events.AgentNodeReady},
		{"mixed", nil, events.AgentNodeReady},
		{"allocated", []string{"COMPLETING"}, events.AgentNodeReady},
		{"idle", []string{"DRAIN"}, events.AgentNodeDraining},
		{"allocated", []string{"DRAIN"}, events.AgentNodeDraining}, // draining: its jobs run on, no new ones
		{"idle", []string{"MAINTENANCE", "RESERVED"}, events.AgentNodeDraining},
		{"down", nil, events.AgentNodeDown},
		{"down", []string{"DRAIN"}, events.AgentNodeDown},
		{"idle", []string{"NOT_RESPONDING"}, events.AgentNodeDown},
		{"future", nil, events.AgentNodeDown},
	} {
		if got := nodeState(c.state, c.flags); got != c.want {
			t.Errorf("nodeState(%q, %v) = %q, want %q", c.state, c.flags, got, c.want)
		}
	}
}

func TestGPUsFromGRES(t *testing.T) {
	for in, want := range map[string]string{
		"gpu:h100:4":                         "[{h100 4}]",
		"gpu:h100:4(S:0-1)":                  "[{h100 4}]",
		"gpu:h100:4(S:0),gpu:a100:2,shard:8": "[{h100 4} {a100 2}]",
		"gpu:8":                              "[{gpu 8}]",
		"":                                   "[]",
		"(null)":                             "[]",
		"gpu:h100:x":                         "[]",
	} {
		if got := fmt.Sprint(gpus(in)); got != want {
			t.Errorf("gpus(%q) = %s, want %s", in, got, want)
		}
	}
}
