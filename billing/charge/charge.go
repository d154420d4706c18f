// Package charge is billing's price and co-funding arithmetic: pure functions on int64 micro-credits, with no
// I/O and no knowledge of tables, accounts or events. It must never round in the customer's disfavour by more
// than the one floor each formula documents, and never return a wrong number: an operand out of range is
// money.ErrInvalid, a result that does not fit int64 is money.ErrOverflow.
package charge

import (
	"fmt"
	"math"
	"math/bits"

	"github.com/tamarack-ai/tamarack/platform/money"
)

// Hold is the amount reserved for gpus devices for seconds at price per GPU-hour, rounded down.
func Hold(price money.Micro, gpus, seconds int64) (money.Micro, error) {
	if seconds > math.MaxInt64/1000 {
		return 0, fmt.Errorf("hold for %d s: %w", seconds, money.ErrOverflow)
	}
	return money.PerGPUHour(price, gpus, seconds*1000)
}

// Meter is one sandbox's metering state. Rounding is cumulative: Charged is always
// floor(Price × DeviceMs / 3,600,000) over the sandbox's whole metered time, and each interval is charged the
// difference, so the sum of a sandbox's charges is within one micro-credit of the exact product whatever the
// number, length or order of its intervals.
type Meter struct {
	Price    money.Micro // per GPU-hour
	DeviceMs int64       // device-milliseconds metered so far
	Charged  money.Micro // charged so far
}

// Add meters devices × millis more and returns the interval's charge. On error the meter is unchanged.
func (m *Meter) Add(devices int, millis int64) (money.Micro, error) {
	if devices < 0 || millis < 0 {
		return 0, fmt.Errorf("meter %d devices × %d ms: %w", devices, millis, money.ErrInvalid)
	}
	hi, dm := bits.Mul64(uint64(devices), uint64(millis))
	cum := uint64(m.DeviceMs) + dm
	if hi != 0 || dm > math.MaxInt64 || m.DeviceMs < 0 || cum > math.MaxInt64 {
		return 0, fmt.Errorf("meter %d device-ms + %d devices × %d ms: %w", m.DeviceMs, devices, millis, money.ErrOverflow)
	}
	total, err := money.PerGPUHour(m.Price, 1, int64(cum))
	if err != nil {
		return 0, fmt.Errorf("meter: %w", err)
	}
	if total < m.Charged {
		return 0, fmt.Errorf("meter: %d micro-credits charged exceed the %d that %d device-ms cost at %d per GPU-hour: %w",
			m.Charged, total, cum, m.Price, money.ErrInvalid)
	}
	c := total - m.Charged
	m.DeviceMs, m.Charged = int64(cum), total
	return c, nil
}

// Cofund is a co-funding rule's share of a charge: percent of it rounded down (in the programme's favour by
// less than one micro-credit), at most what is left of the rule's cap, and never negative.
func Cofund(charge money.Micro, percent int, capLeft money.Micro) (money.Micro, error) {
	if percent < 0 || percent > 100 {
		return 0, fmt.Errorf("co-funding %d%%: %w", percent, money.ErrInvalid)
	}
	if charge <= 0 || percent == 0 || capLeft <= 0 {
		return 0, nil
	}
	share, err := money.MulDiv(charge, int64(percent), 100)
	if err != nil {
		return 0, fmt.Errorf("co-funding %d%% of %d: %w", percent, charge, err)
	}
	return min(share, capLeft), nil
}

// Allocate takes amount from sources in order, each up to what it has available (a negative availability
// counts as none), and returns what each gives and the shortfall none could cover. The takes and the
// shortfall always sum to amount; a non-positive amount takes nothing.
func Allocate(amount money.Micro, available []money.Micro) (take []money.Micro, shortfall money.Micro) {
	take = make([]money.Micro, len(available))
	for i, a := range available {
		if amount <= 0 {
			break
		}
		t := min(max(a, 0), amount)
		take[i] = t
		amount -= t
	}
	return take, max(amount, 0)
}

// Split divides a collected amount into the vendor's share (vendorBPS basis points, rounded down) and the
// platform fee (the rest): they always sum to collected.
func Split(collected money.Micro, vendorBPS int64) (vendor, fee money.Micro, err error) {
	if vendorBPS < 0 || vendorBPS > 10_000 {
		return 0, 0, fmt.Errorf("vendor share %d bps: %w", vendorBPS, money.ErrInvalid)
	}
	v, err := money.MulDiv(collected, vendorBPS, 10_000)
	if err != nil {
		return 0, 0, fmt.Errorf("vendor share of %d: %w", collected, err)
	}
	return v, collected - v, nil
}

// Exhausted reports whether a running sandbox must be stopped for want of credits: part of its charges went
// uncollected (shortfall), or what is left of its hold cannot cover another interval like the last (next) and
// the organisation's unreserved funds (available) cannot cover the difference.
func Exhausted(shortfall, next, remaining, available money.Micro) bool {
	return shortfall > 0 || (next > 0 && remaining < next && available < next-remaining)
}

// Crossed returns the notification threshold (80 or 100 percent) that used has reached against limit when it
// is above the one already notified, else 0. A non-positive limit has no thresholds.
func Crossed(notified int, used, limit money.Micro) int {
	if limit <= 0 {
		return 0
	}
	pct := 0
	switch {
	case used >= limit:
		pct = 100
	case used > 0 && mulGE(uint64(used), 10, uint64(limit), 8): // in 128 bits: limit × 8 overflows int64
		pct = 80
	}
	if pct > notified {
		return pct
	}
	return 0
}

// mulGE reports a×m >= b×n for non-negative operands, without overflow.
func mulGE(a, m, b, n uint64) bool {
	ahi, alo := bits.Mul64(a, m)
	bhi, blo := bits.Mul64(b, n)
	return ahi > bhi || (ahi == bhi && alo >= blo)
}
