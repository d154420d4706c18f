package main

import (
	"slices"
	"testing"
)

// TestServiceTable: every row of the composition root's table is complete, named once, and in dependency
// order (identity provides the token keys and the demo organisations; the testbed's demo pool is what the
// marketplace's seed sells; billing projects the organisations); --only takes exactly its names and ui.
func TestServiceTable(t *testing.T) {
	var names []string
	for _, s := range services() {
		if s.name == "" || s.migrations == nil || s.wire == nil || s.seed == nil {
			t.Errorf("row %q is incomplete: %+v", s.name, s)
		}
		if slices.Contains(names, s.name) {
			t.Errorf("row %q twice", s.name)
		}
		names = append(names, s.name)
	}
	if want := []string{"identity", "testbed", "marketplace", "billing"}; !slices.Equal(names, want) {
		t.Errorf("table order %v, want %v", names, want)
	}
	if got := serviceNames(); !slices.Equal(got, append(names, "ui")) {
		t.Errorf("--only names %v", got)
	}
	c := &config{services: []string{"billing", "identity"}}
	var got []string
	for _, s := range configured(c) {
		got = append(got, s.name)
	}
	if !slices.Equal(got, []string{"identity", "billing"}) {
		t.Errorf("--only=billing,identity runs %v, want the table's order", got)
	}
	if n := len(migrationsFor(c)); n != 2 {
		t.Errorf("--only=billing,identity migrates %d sets, want 2", n)
	}
}
