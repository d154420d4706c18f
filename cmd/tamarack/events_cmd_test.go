package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/natstest"
	"github.com/tamarack-ai/tamarack/services/events"
)

func TestEventsCommandPrintsTheLastEvents(t *testing.T) {
	bus := natstest.Start(t)
	ctx := context.Background()
	if err := bus.EnsureStreams(ctx, events.TestbedStream); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 1; i <= 5; i++ {
		u := events.SandboxUsageV1{SandboxID: "sb1", OrganizationID: "o1", DeviceCount: 1, Seq: uint64(i),
			Start: start.Add(time.Duration(i-1) * 15 * time.Second), End: start.Add(time.Duration(i) * 15 * time.Second), Millis: 15000}
		if err := eventbus.Publish(ctx, bus, events.SandboxUsage, "test", u.SandboxID+"-"+string(rune('0'+i)), u.End, u); err != nil {
			t.Fatal(err)
		}
	}
	c := newConfig("events")
	c.fs.SetOutput(io.Discard)
	if err := c.parse([]string{"--nats", bus.ClientURL(), "--data", t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := eventsCmd(ctx, c, bus.StreamName(events.StreamTestbed), "", 2, false, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want the last 2 events, got:\n%s", out.String())
	}
	var last struct {
		ID   string `json:"id"`
		Data struct {
			Seq int `json:"seq"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(lines[1]), &last); err != nil || last.Data.Seq != 5 || last.ID != "sb1-5" {
		t.Fatalf("last line %q: %v", lines[1], err)
	}
}

// TestEventsCommandLastOfASubject: --last N counts only the events of the asked subject, though others are
// interleaved in the stream.
func TestEventsCommandLastOfASubject(t *testing.T) {
	bus := natstest.Start(t)
	ctx := context.Background()
	if err := bus.EnsureStreams(ctx, events.TestbedStream); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 1; i <= 4; i++ {
		u := events.SandboxUsageV1{SandboxID: "sb1", OrganizationID: "o1", DeviceCount: 1, Seq: uint64(i),
			Start: start.Add(time.Duration(i-1) * 15 * time.Second), End: start.Add(time.Duration(i) * 15 * time.Second), Millis: 15000}
		if err := eventbus.Publish(ctx, bus, events.SandboxUsage, "test", fmt.Sprintf("usage-%d", i), u.End, u); err != nil {
			t.Fatal(err)
		}
		// Five other events after each usage event.
		for k := range 5 {
			p := events.PoolChangedV1{PoolID: fmt.Sprintf("pool-%d-%d", i, k), VendorOrgID: "v1", Name: "p", Region: "r", At: u.End}
			if err := eventbus.Publish(ctx, bus, events.PoolChanged, "test", p.PoolID, u.End, p); err != nil {
				t.Fatal(err)
			}
		}
	}
	c := newConfig("events")
	c.fs.SetOutput(io.Discard)
	if err := c.parse([]string{"--nats", bus.ClientURL(), "--data", t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		last int
		want []string
	}{{1, []string{"usage-4"}}, {2, []string{"usage-3", "usage-4"}}, {4, []string{"usage-1", "usage-2", "usage-3", "usage-4"}},
		{9, []string{"usage-1", "usage-2", "usage-3", "usage-4"}}} {
		var out bytes.Buffer
		if err := eventsCmd(ctx, c, bus.StreamName(events.StreamTestbed), bus.Subject(events.SandboxUsage.Name), tc.last, false, &out); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			var ev struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal([]byte(l), &ev); err != nil {
				t.Fatalf("--last %d: line %q: %v", tc.last, l, err)
			}
			got = append(got, ev.ID)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("--last %d: got %v, want %v", tc.last, got, tc.want)
		}
	}
}
