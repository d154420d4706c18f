package identity

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter is a token bucket per key ("signup-ip:…"): perMin a minute with a burst of perMin. It is per
// process: N identity processes allow up to N times the rate (see docs/identity.md). Sign-ins do not use it:
// their throttle is shared through the database (throttle.go).
type limiter struct {
	perMin int
	mu     sync.Mutex
	keys   map[string]*bucket
	swept  time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newLimiter(perMin int) *limiter {
	return &limiter{perMin: perMin, keys: map[string]*bucket{}}
}

// allow takes one token from every key's bucket, or none when any is empty; wait is how long until the
// emptiest would allow again.
func (l *limiter) allow(now time.Time, keys ...string) (ok bool, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	res := make([]*rate.Reservation, 0, len(keys))
	for _, k := range keys {
		b := l.keys[k]
		if b == nil {
			b = &bucket{lim: rate.NewLimiter(rate.Limit(float64(l.perMin)/60), l.perMin)}
			l.keys[k] = b
		}
		b.seen = now
		r := b.lim.ReserveN(now, 1)
		res = append(res, r)
		if d := r.DelayFrom(now); d > wait {
			wait = d
		}
	}
	if wait > 0 {
		for _, r := range res {
			r.CancelAt(now)
		}
		return false, wait
	}
	return true, 0
}

// sweep forgets buckets idle long enough to be full again, so memory stays bounded by recent callers.
func (l *limiter) sweep(now time.Time) {
	if now.Sub(l.swept) < time.Minute {
		return
	}
	l.swept = now
	for k, b := range l.keys {
		if now.Sub(b.seen) > 2*time.Minute {
			delete(l.keys, k)
		}
	}
}
