package marketplace

import (
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// searchCache keeps recent catalogue answers, already rendered as JSON. The catalogue changes rarely and is
// read constantly, with a long tail of repeated queries. An answer is dropped when this process changes the
// catalogue (the generation moves); after the TTL it is refreshed in the background while the previous answer
// is still served once more, so another process's change shows within about one TTL and no request waits on
// an expiry. Concurrent identical misses share one database query.
type searchCache struct {
	ttl     time.Duration
	max     int
	mu      sync.Mutex
	gen     uint64
	entries map[string]cacheEntry
	flight  singleflight.Group
}

type cacheEntry struct {
	body []byte
	gen  uint64
	at   time.Time
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

func (c *searchCache) get(key string, load func() ([]byte, error)) ([]byte, error) {
	c.mu.Lock()
	e, ok := c.entries[key]
	gen := c.gen
	c.mu.Unlock()
	fill := func() (any, error) {
		at := time.Now()
		body, err := load()
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		if c.gen == gen {
			if len(c.entries) >= c.max {
				c.entries = map[string]cacheEntry{} // crude but bounded: the hot set refills within one TTL
			}
			c.entries[key] = cacheEntry{body: body, gen: gen, at: at}
		}
		c.mu.Unlock()
		return body, nil
	}
	flightKey := fmt.Sprint(gen, "\x00", key)
	if ok && e.gen == gen {
		if time.Since(e.at) >= c.ttl {
			go func() { _, _, _ = c.flight.Do(flightKey, fill) }()
		}
		return e.body, nil
	}
	v, err, _ := c.flight.Do(flightKey, fill)
	if err != nil {
		return nil, err
	}
	return v.([]byte), nil
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
