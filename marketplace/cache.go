package marketplace

import (
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// searchCache keeps recent catalogue answers. The catalogue changes rarely and is read constantly, with a
// long tail of repeated queries; an answer is reused until the local process changes the catalogue (the
// generation moves) or the TTL passes, which bounds how stale another process's change can look. Concurrent
// identical misses share one database query.
type searchCache struct {
	ttl     time.Duration
	max     int
	mu      sync.Mutex
	gen     uint64
	entries map[string]cacheEntry
	flight  singleflight.Group
}

type cacheEntry struct {
	res SearchResult
	gen uint64
	at  time.Time
}

func newSearchCache(ttl time.Duration, max int) *searchCache {
	return &searchCache{ttl: ttl, max: max, entries: map[string]cacheEntry{}}
}

// invalidate forgets every answer (called after a catalogue write commits).
func (c *searchCache) invalidate() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.gen++
	c.entries = map[string]cacheEntry{}
	c.mu.Unlock()
}

func (c *searchCache) get(in SearchInput, load func() (SearchResult, error)) (SearchResult, error) {
	key := cacheKey(in)
	now := time.Now()
	c.mu.Lock()
	e, ok := c.entries[key]
	gen := c.gen
	c.mu.Unlock()
	if ok && e.gen == gen && now.Sub(e.at) < c.ttl {
		return e.res, nil
	}
	v, err, _ := c.flight.Do(fmt.Sprint(gen, key), func() (any, error) {
		res, err := load()
		if err != nil {
			return res, err
		}
		c.mu.Lock()
		if c.gen == gen {
			if len(c.entries) >= c.max {
				c.entries = map[string]cacheEntry{} // crude but bounded: the hot set refills in one TTL
			}
			c.entries[key] = cacheEntry{res: res, gen: gen, at: now}
		}
		c.mu.Unlock()
		return res, nil
	})
	if err != nil {
		return SearchResult{}, err
	}
	return v.(SearchResult), nil
}

func cacheKey(in SearchInput) string {
	viewer := "anon"
	switch {
	case in.ViewerStaff:
		viewer = "staff"
	case in.ViewerOrg != "":
		viewer = "org:" + in.ViewerOrg
	}
	p := func(v *int64) string {
		if v == nil {
			return "-"
		}
		return fmt.Sprint(*v)
	}
	return fmt.Sprintf("%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%d\x00%s",
		viewer, in.Q, in.Kind, in.Tag, in.License, in.GPUModel, in.Residency, in.Vendor, p(in.PriceMin), p(in.PriceMax), in.Sort, in.Limit, in.Cursor)
}
