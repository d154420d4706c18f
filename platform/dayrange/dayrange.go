// Package dayrange is a range of calendar days in a viewer's time zone, as charts and reports ask for them
// (from, to as yyyy-mm-dd and tz as an IANA zone): validated once, with the instants each day covers.
package dayrange

import (
	"time"

	"github.com/tamarack-ai/tamarack/platform/problem"
)

// MaxDays bounds a range (a year and a day, so "the last 12 months" fits).
const MaxDays = 366

// Range is a validated, inclusive range of calendar days of Loc. From and To hold the dates at midnight UTC
// (so that they format as the dates); Start and End give the instants the range covers in Loc.
type Range struct {
	From, To time.Time
	Loc      *time.Location // nil: UTC
}

func (r Range) Location() *time.Location {
	if r.Loc == nil {
		return time.UTC
	}
	return r.Loc
}

// Local reports whether the range's days are not UTC days (sums are then bucketed by instant).
func (r Range) Local() bool { return r.Location() != time.UTC }

// Start is the first instant of From in Loc, in UTC: SQLite compares stored times as text, so every bound
// is written with the zone the rows are stored in.
func (r Range) Start() time.Time {
	return time.Date(r.From.Year(), r.From.Month(), r.From.Day(), 0, 0, 0, 0, r.Location()).UTC()
}

// End is the first instant after To in Loc, in UTC.
func (r Range) End() time.Time {
	return time.Date(r.To.Year(), r.To.Month(), r.To.Day()+1, 0, 0, 0, 0, r.Location()).UTC()
}

// DayOf is the calendar day of instant t in Loc, as yyyy-mm-dd.
func (r Range) DayOf(t time.Time) string { return t.In(r.Location()).Format("2006-01-02") }

// Days lists the range's days as yyyy-mm-dd.
func (r Range) Days() []string {
	var out []string
	for d := r.From; !d.After(r.To); d = d.AddDate(0, 0, 1) {
		out = append(out, d.Format("2006-01-02"))
	}
	return out
}

// Bounds are the instants, in UTC, at which the range's days begin, and the instant after its last day: day i
// covers [Bounds()[i], Bounds()[i+1]), 23 or 25 hours long where Loc changes its clocks.
func (r Range) Bounds() []time.Time {
	var out []time.Time
	for d := r.From; !d.After(r.To.AddDate(0, 0, 1)); d = d.AddDate(0, 0, 1) {
		out = append(out, time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, r.Location()).UTC())
	}
	return out
}

// Parse validates from/to (yyyy-mm-dd, inclusive; default: the 30 days ending today) as days of the
// IANA time zone tz (empty: UTC): both well formed, from ≤ to, at most MaxDays days, not starting after
// today in tz; tz a zone the server knows. Every bad field is listed.
func Parse(from, to, tz string, now time.Time) (Range, error) {
	var f problem.Fields
	loc := time.UTC
	if tz != "" {
		l, err := time.LoadLocation(tz)
		if err != nil || tz == "Local" || len(tz) > 64 {
			f.AddMsg("tz", "invalid", "field.text.time_zone", nil)
			return Range{}, f.Err()
		}
		loc = l
	}
	now = now.In(loc)
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	r := Range{From: today.AddDate(0, 0, -29), To: today}
	if loc != time.UTC {
		r.Loc = loc
	}
	if to != "" {
		t, err := time.Parse("2006-01-02", to)
		if err != nil {
			f.Add("to", "invalid", "use yyyy-mm-dd")
		} else {
			r.To = t
			if from == "" {
				r.From = t.AddDate(0, 0, -29)
			}
		}
	}
	if from != "" {
		t, err := time.Parse("2006-01-02", from)
		if err != nil {
			f.Add("from", "invalid", "use yyyy-mm-dd")
		} else {
			r.From = t
		}
	}
	if err := f.Err(); err != nil {
		return r, err
	}
	switch {
	case r.From.After(r.To):
		f.Add("from", "out_of_range", "must not be after to")
	case r.From.After(today):
		f.Add("from", "out_of_range", "must not be in the future")
	case int(r.To.Sub(r.From).Hours()/24)+1 > MaxDays:
		f.AddMsg("to", "out_of_range", "field.text.range_days", problem.Args{"Days": MaxDays})
	}
	return r, f.Err()
}
