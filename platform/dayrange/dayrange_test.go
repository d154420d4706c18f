package dayrange

import (
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	now := time.Date(2026, 3, 10, 23, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		from, to       string
		ok             bool
		wantFrom, want string
	}{
		{"", "", true, "2026-02-09", "2026-03-10"},
		{"2026-03-01", "2026-03-05", true, "2026-03-01", "2026-03-05"},
		{"", "2026-01-30", true, "2026-01-01", "2026-01-30"},
		{"2025-03-10", "2026-03-10", true, "2025-03-10", "2026-03-10"}, // 366 days
		{"2025-03-09", "2026-03-10", false, "", ""},                    // 367
		{"2026-03-05", "2026-03-01", false, "", ""},
		{"2026-03-11", "2026-03-12", false, "", ""}, // future
		{"2026-3-1", "", false, "", ""},
		{"", "tomorrow", false, "", ""},
	} {
		r, err := Parse(c.from, c.to, "", now)
		if (err == nil) != c.ok {
			t.Errorf("%q..%q: err %v, want ok=%v", c.from, c.to, err, c.ok)
			continue
		}
		if c.ok && (r.From.Format("2006-01-02") != c.wantFrom || r.To.Format("2006-01-02") != c.want) {
			t.Errorf("%q..%q: %v..%v", c.from, c.to, r.From, r.To)
		}
	}
}
