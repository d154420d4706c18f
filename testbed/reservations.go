package testbed

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/platform/web"
)

// Reserve books GPUs of a listing's pool and model for a future window. Limits: the window is at most
// MaxReservation long and an organisation holds at most MaxReservationsOrg pending or active reservations
// (anti-hoarding). The window must have the devices free at every moment, counting running sandboxes until
// their expiry and every other reservation; otherwise 409 no_capacity proposes the nearest free start.
func (s *Service) Reserve(ctx context.Context, c web.Principal, in ReserveInput) (Reservation, error) {
	if err := web.ActsForOrg(c); err != nil {
		return Reservation{}, err
	}
	now := s.clock.Now()
	var f problem.Fields
	// A field left out (its zero value) is "required"; a value given but wrong has its own code.
	f.Check(in.ListingID != "", "listing_id", "required", "the compute listing to reserve from")
	if in.GPUCount == 0 {
		f.Add("gpu_count", "required", "1 to 64 devices")
	} else {
		f.Check(in.GPUCount >= 1 && in.GPUCount <= 64, "gpu_count", "invalid", "1 to 64 devices")
	}
	switch {
	case in.StartsAt.IsZero():
		f.Add("starts_at", "required", "an RFC 3339 time, now or later")
	case in.StartsAt.Before(now.Add(-time.Minute)):
		f.Add("starts_at", "in_past", "must be now or later")
	}
	switch {
	case in.EndsAt.IsZero():
		f.Add("ends_at", "required", "an RFC 3339 time after starts_at")
	case !in.EndsAt.After(in.StartsAt):
		f.Add("ends_at", "before_start", "must be after starts_at")
	}
	f.CheckMsg(in.EndsAt.Sub(in.StartsAt) <= s.opts.MaxReservation, "ends_at", "too_long",
		"field.text.reservation_max", problem.Args{"Minutes": int(s.opts.MaxReservation.Minutes())})
	if err := f.Err(); err != nil {
		return Reservation{}, err
	}
	l, err := listingByID(s.db.WithContext(ctx), in.ListingID)
	if err != nil {
		return Reservation{}, err
	}
	if !l.VisibleFor(c) {
		return Reservation{}, ErrListingNotFound
	}
	if err := s.checkAccess(ctx, c, l); err != nil {
		return Reservation{}, err
	}
	r := Reservation{ID: newID("res"), OrgID: c.OrgID, UserID: c.UserID, ListingID: l.ID, PoolID: l.PoolID,
		GPUModel: l.GPUModel, GPUCount: in.GPUCount, StartsAt: stamp(in.StartsAt), EndsAt: stamp(in.EndsAt),
		State: ResPending, CreatedAt: stamp(now)}
	x := s.index()
	// The check and the insert are serialised across every replica by the pool and model's lock row, held
	// until commit (reservation_lock.go); the reservations counted are read from the database under it, so a
	// booking made by another replica is never missed.
	err = sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		booked, err := lockReservations(tx, r.PoolID, r.GPUModel, r.StartsAt)
		if err != nil {
			return err
		}
		if err := x.checkWindow(r, booked); err != nil {
			return err
		}
		n, err := liveReservationCount(tx, c.OrgID)
		if err != nil {
			return err
		}
		if int(n) >= s.opts.MaxReservationsOrg {
			return ErrReservationLimit.WithDetailMsg("problem.reservation_limit.max", problem.Args{"Max": s.opts.MaxReservationsOrg})
		}
		return createReservation(tx, &r)
	})
	if err != nil {
		return Reservation{}, fmt.Errorf("reserve: %w", err)
	}
	x.reserve(r)
	return r, nil
}

// CancelReservation cancels a pending or active reservation of the caller's organisation.
func (s *Service) CancelReservation(ctx context.Context, c web.Principal, id string) (Reservation, error) {
	var r Reservation
	err := sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		var err error
		if c.Staff {
			r, err = anyReservation(tx, id) // staff cancel any organisation's
		} else {
			r, err = reservationOfOrg(tx, c.OrgID, id)
		}
		if err != nil {
			return err
		}
		if r.State != ResPending && r.State != ResActive {
			return ErrReservationState
		}
		r.State = ResCancelled
		if err := s.audit(tx, c, r.OrgID, "reservation.cancel", r.ID, "organisation "+r.OrgID); err != nil {
			return err
		}
		return saveReservation(tx, &r)
	})
	if err != nil {
		return Reservation{}, fmt.Errorf("cancel reservation %s: %w", id, err)
	}
	s.index().unreserve(r)
	return r, nil
}

// ListReservations lists the caller's organisation's reservations, newest window first.
func (s *Service) ListReservations(ctx context.Context, c web.Principal, limit int) ([]Reservation, error) {
	return reservationsOfOrg(s.db.WithContext(ctx), c.OrgID, limit)
}

func (s *Service) tickReservations(ctx context.Context, now time.Time) error {
	db := s.db.WithContext(ctx)
	if err := activateReservations(db, now); err != nil {
		return err
	}
	done, err := endedReservations(db, now)
	if err != nil {
		return err
	}
	for _, r := range done {
		if err := completeReservation(db, r.ID); err != nil {
			return err
		}
		s.index().unreserve(r)
	}
	return nil
}

// AvailabilityBucket is the free devices of one model in one pool over one time bucket: the fewest free at
// any moment of the bucket.
type AvailabilityBucket struct {
	PoolID   string
	GPUModel string
	Start    time.Time
	End      time.Time
	Free     int
	Total    int
}

// Availability returns, per pool and model (optionally filtered), the free devices over buckets of step
// from from to to (at most 200 buckets).
func (s *Service) Availability(ctx context.Context, poolID, model string, from, to time.Time, step time.Duration) ([]AvailabilityBucket, error) {
	var f problem.Fields
	f.Check(to.After(from), "to", "before_from", "must be after from")
	f.Check(step >= time.Minute, "step", "too_small", "at least 1m")
	if step >= time.Minute {
		f.Check(to.Sub(from)/step <= 200, "step", "too_many_buckets", "at most 200 buckets")
	}
	if model != "" && !KnownGPUModel(model) {
		f.Add("gpu_model", "unknown_gpu_model", "unknown GPU model")
	}
	if err := f.Err(); err != nil {
		return nil, err
	}
	var starts []time.Time
	for t := from; t.Before(to); t = t.Add(step) {
		starts = append(starts, t)
	}
	var out []AvailabilityBucket
	for _, a := range s.index().availabilities(poolID, model, starts, step) {
		for i, t := range starts {
			out = append(out, AvailabilityBucket{PoolID: a.PoolID, GPUModel: a.GPUModel, Start: t, End: t.Add(step),
				Free: max(0, a.Free[i]), Total: a.Total})
		}
	}
	sortBuckets(out)
	return out, nil
}
