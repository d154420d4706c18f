package problem

import (
	"errors"
	"fmt"
	"testing"

	"github.com/tamarack-ai/tamarack/platform/problem/problemtest"
)

func TestFromFindsWrappedProblemAndKeepsContext(t *testing.T) {
	t.Parallel()
	sentinel := New(409, "listing_not_submitted", "The listing is not submitted.")
	err := fmt.Errorf("approve listing abc: %w", sentinel)
	p, ok := From(err)
	if !ok {
		t.Fatal("From did not find the problem")
	}
	if p.Code != "listing_not_submitted" || p.Status != 409 {
		t.Fatalf("got %+v", p)
	}
	if p.Detail != "approve listing abc: listing_not_submitted: The listing is not submitted." {
		t.Fatalf("detail = %q", p.Detail)
	}
	if sentinel.Detail != "" {
		t.Fatal("From mutated the sentinel")
	}
	if !errors.Is(err, sentinel) || !errors.Is(sentinel.WithDetail("x"), sentinel) {
		t.Fatal("errors.Is must match copies of a sentinel by code")
	}
	if _, ok := From(errors.New("boom")); ok {
		t.Fatal("a plain error is not a problem")
	}
}

func TestFieldsListsEveryErrorSorted(t *testing.T) {
	t.Parallel()
	var f Fields
	if f.Err() != nil {
		t.Fatal("no fields, no error")
	}
	f.Add("name", "required", "is required")
	f.Check(false, "email", "email", "must be an e-mail address")
	f.Check(true, "ok", "x", "never added")
	p, ok := From(f.Err())
	if !ok || p.Code != "validation_failed" || p.Status != 422 {
		t.Fatalf("got %+v", p)
	}
	if len(p.Fields) != 2 || p.Fields[0].Field != "email" || p.Fields[1].Field != "name" {
		t.Fatalf("fields = %+v", p.Fields)
	}
}

func TestBodyCarriesExtraWithoutOverwritingStandardMembers(t *testing.T) {
	t.Parallel()
	p := New(409, "no_capacity", "No capacity.").WithExtra("next_free_at", "2026-01-01T00:00:00Z").WithExtra("code", "evil")
	b := p.Body()
	if b["next_free_at"] != "2026-01-01T00:00:00Z" || b["code"] != "no_capacity" {
		t.Fatalf("body = %v", b)
	}
}

// Every common problem tells the caller what to do next.
func TestCommonProblemsHaveDetails(t *testing.T) {
	t.Parallel()
	problemtest.RequireDetails(t, "problem.go")
}
