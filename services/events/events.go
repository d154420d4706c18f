// Package events is the contract between Tamarack's services: every subject is declared once here with its
// payload type, stream and version. It imports nothing but the generic declarations of platform/eventbus.
// Names are tamarack.<service>.<entity>.<past-verb>.v<N>; a breaking change is a new version beside the old.
// Money is int64 micro-credits; times are UTC.
package events

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Streams, one per producing service.
const (
	StreamIdentity    = "IDENTITY"
	StreamMarketplace = "MARKETPLACE"
	StreamTestbed     = "TESTBED"
	StreamBilling     = "BILLING"
)

// check collects missing required fields of a payload.
type check []string

func (c *check) need(ok bool, name string) {
	if !ok {
		*c = append(*c, name)
	}
}

func (c check) err(kind string) error {
	if len(c) == 0 {
		return nil
	}
	return fmt.Errorf("%s: missing or invalid %s", kind, strings.Join(c, ", "))
}

func set(t time.Time) bool { return !t.IsZero() }

var errNegative = errors.New("negative amount")
