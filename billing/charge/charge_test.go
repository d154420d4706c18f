package charge

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/tamarack-ai/tamarack/platform/money"
)

func TestHold(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name          string
		price         money.Micro
		gpus, seconds int64
		want          money.Micro
		err           error
	}{
		{"an hour of one GPU", 2_500_000, 1, 3600, 2_500_000, nil},
		{"8 GPUs for 10 minutes", 2_500_000, 8, 600, 3_333_333, nil}, // 3,333,333.33 rounded down
		{"one second at one micro-credit per hour", 1, 1, 1, 0, nil},
		{"seconds × 1000 beyond int64", 1, 1, math.MaxInt64/1000 + 1, 0, money.ErrOverflow},
		{"result beyond int64", math.MaxInt64, 2, 3600, 0, money.ErrOverflow},
		{"negative seconds", 1, 1, -1, 0, money.ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Hold(c.price, c.gpus, c.seconds)
			check(t, got, err, c.want, c.err)
		})
	}
}

func TestMeterCumulativeRounding(t *testing.T) {
	t.Parallel()
	type step struct {
		devices int
		millis  int64
		want    money.Micro // this interval's charge
	}
	cases := []struct {
		name  string
		price money.Micro
		steps []step
		total money.Micro
	}{
		{"whole hours", 3_600_000, []step{{1, 3_600_000, 3_600_000}, {2, 1_800_000, 3_600_000}}, 7_200_000},
		// 1 micro-credit per GPU-hour: no interval is worth one alone, the third crosses the first whole one.
		{"sub-micro intervals accumulate", 1, []step{{1, 1_500_000, 0}, {1, 1_500_000, 0}, {1, 1_500_000, 1}, {1, 3_000_000, 1}}, 2},
		// 1,000,001 per hour × 1 ms = 0.2777... each; the fourth ms crosses one micro-credit.
		{"one millisecond at a time", 1_000_001, []step{{1, 1, 0}, {1, 1, 0}, {1, 1, 0}, {1, 1, 1}, {4, 1, 1}}, 2},
		{"zero-length and zero-price intervals", 0, []step{{1, 0, 0}, {8, 3_600_000, 0}}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := Meter{Price: c.price}
			var sum money.Micro
			for i, s := range c.steps {
				got, err := m.Add(s.devices, s.millis)
				if err != nil || got != s.want {
					t.Fatalf("step %d: Add(%d, %d) = %d, %v; want %d", i, s.devices, s.millis, got, err, s.want)
				}
				sum += got
			}
			want, err := money.PerGPUHour(c.price, 1, m.DeviceMs)
			if err != nil || sum != c.total || m.Charged != c.total || want != c.total {
				t.Fatalf("sum %d, Charged %d, floor(price × %d ms) = %d (%v); want %d", sum, m.Charged, m.DeviceMs, want, err, c.total)
			}
		})
	}
}

func TestMeterOrderDoesNotChangeTheTotal(t *testing.T) {
	t.Parallel()
	ms := []int64{1, 999, 3_599_999, 7, 12_345, 1_800_001, 2}
	var totals []money.Micro
	for _, order := range [][]int{{0, 1, 2, 3, 4, 5, 6}, {6, 5, 4, 3, 2, 1, 0}, {3, 0, 6, 1, 5, 2, 4}} {
		m := Meter{Price: 2_500_001}
		var sum money.Micro
		for _, i := range order {
			c, err := m.Add(1, ms[i])
			if err != nil {
				t.Fatal(err)
			}
			sum += c
		}
		totals = append(totals, sum)
	}
	if totals[0] != totals[1] || totals[1] != totals[2] {
		t.Fatalf("totals by order: %v", totals)
	}
}

func TestMeterRefusesAndStaysUnchanged(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		m       Meter
		devices int
		millis  int64
		err     error
	}{
		{"negative devices", Meter{Price: 1}, -1, 1, money.ErrInvalid},
		{"negative millis", Meter{Price: 1}, 1, -1, money.ErrInvalid},
		{"devices × millis beyond int64", Meter{Price: 1}, math.MaxInt32, math.MaxInt64 / 2, money.ErrOverflow},
		{"cumulative time beyond int64", Meter{Price: 1, DeviceMs: math.MaxInt64 - 1}, 1, 2, money.ErrOverflow},
		{"charge beyond int64", Meter{Price: math.MaxInt64, DeviceMs: 3_600_000, Charged: math.MaxInt64}, 1, 3_600_000, money.ErrOverflow},
		{"charged more than the time is worth", Meter{Price: 1, DeviceMs: 0, Charged: 5}, 1, 1, money.ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := c.m
			got, err := m.Add(c.devices, c.millis)
			if !errors.Is(err, c.err) {
				t.Fatalf("Add = %d, %v; want %v", got, err, c.err)
			}
			if m != c.m {
				t.Fatalf("meter changed on error: %+v, was %+v", m, c.m)
			}
		})
	}
}

func TestCofund(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		charge  money.Micro
		percent int
		capLeft money.Micro
		want    money.Micro
		err     error
	}{
		{"half", 1_000_000, 50, 10_000_000, 500_000, nil},
		{"rounded down", 999, 50, 10_000, 499, nil},
		{"one micro-credit at 99% is nothing", 1, 99, 10, 0, nil},
		{"capped", 1_000_000, 50, 123, 123, nil},
		{"cap used up", 1_000_000, 50, 0, 0, nil},
		{"cap overdrawn counts as used up", 1_000_000, 50, -5, 0, nil},
		{"no rule", 1_000_000, 0, 10, 0, nil},
		{"everything", 1_000_000, 100, math.MaxInt64, 1_000_000, nil},
		{"nothing charged", 0, 50, 10, 0, nil},
		{"largest charge in 128 bits", math.MaxInt64, 100, math.MaxInt64, math.MaxInt64, nil},
		{"percent above 100", 1_000_000, 101, 10, 0, money.ErrInvalid},
		{"negative percent", 1_000_000, -1, 10, 0, money.ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Cofund(c.charge, c.percent, c.capLeft)
			check(t, got, err, c.want, c.err)
		})
	}
}

func TestAllocate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		amount    money.Micro
		available []money.Micro
		take      []money.Micro
		short     money.Micro
	}{
		{"first source covers it", 50, []money.Micro{100, 100}, []money.Micro{50, 0}, 0},
		{"spills into the next in order", 150, []money.Micro{100, 100}, []money.Micro{100, 50}, 0},
		{"short by what none has", 250, []money.Micro{100, 100}, []money.Micro{100, 100}, 50},
		{"negative availability gives nothing", 30, []money.Micro{-20, 40}, []money.Micro{0, 30}, 0},
		{"no sources", 30, nil, []money.Micro{}, 30},
		{"nothing to take", 0, []money.Micro{5}, []money.Micro{0}, 0},
		{"a negative amount takes nothing", -5, []money.Micro{5}, []money.Micro{0}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			take, short := Allocate(c.amount, c.available)
			if !slices.Equal(take, c.take) || short != c.short {
				t.Fatalf("Allocate(%d, %v) = %v, %d; want %v, %d", c.amount, c.available, take, short, c.take, c.short)
			}
			var sum money.Micro
			for _, v := range take {
				sum += v
			}
			if c.amount > 0 && sum+short != c.amount {
				t.Fatalf("takes %d + shortfall %d != %d", sum, short, c.amount)
			}
		})
	}
}

func TestSplit(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		collected   money.Micro
		bps         int64
		vendor, fee money.Micro
		err         error
	}{
		{"85%", 1_000_000, 8500, 850_000, 150_000, nil},
		{"the fee takes the remainder", 7, 8500, 5, 2, nil}, // 5.95 rounded down
		{"all to the vendor", 1_000, 10_000, 1_000, 0, nil},
		{"all to the platform", 1_000, 0, 0, 1_000, nil},
		{"nothing collected", 0, 8500, 0, 0, nil},
		{"largest amount in 128 bits", math.MaxInt64, 10_000, math.MaxInt64, 0, nil},
		{"negative amount", -1, 8500, 0, 0, money.ErrInvalid},
		{"share above 100%", 1_000, 10_001, 0, 0, money.ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, fee, err := Split(c.collected, c.bps)
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("Split(%d, %d) = %d, %d, %v; want %v", c.collected, c.bps, v, fee, err, c.err)
				}
				return
			}
			if err != nil || v != c.vendor || fee != c.fee || v+fee != c.collected {
				t.Fatalf("Split(%d, %d) = %d, %d, %v; want %d, %d", c.collected, c.bps, v, fee, err, c.vendor, c.fee)
			}
		})
	}
}

func TestExhausted(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name                              string
		shortfall, next, remaining, avail money.Micro
		want                              bool
	}{
		{"a shortfall stops it", 1, 0, 100, 100, true},
		{"the hold covers the next interval", 0, 10, 10, 0, false},
		{"the organisation covers the rest", 0, 10, 4, 6, false},
		{"neither covers it", 0, 10, 4, 5, true},
		{"nothing charged last time", 0, 0, 0, 0, false},
	}
	for _, c := range cases {
		if got := Exhausted(c.shortfall, c.next, c.remaining, c.avail); got != c.want {
			t.Errorf("%s: Exhausted = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestCrossed(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		notified    int
		used, limit money.Micro
		want        int
	}{
		{0, 0, 10, 0}, {0, 7, 10, 0}, {0, 8, 10, 80}, {80, 9, 10, 0}, {80, 10, 10, 100}, {0, 11, 10, 100},
		{100, 11, 10, 0}, {0, -5, 10, 0},
		{0, 1, math.MaxInt64, 0}, {0, math.MaxInt64 / 10 * 8, math.MaxInt64, 0}, {0, math.MaxInt64/10*8 + 1000, math.MaxInt64, 80},
		{0, math.MaxInt64, math.MaxInt64, 100}, {0, 5, 0, 0}, {0, 5, -1, 0},
	} {
		if got := Crossed(c.notified, c.used, c.limit); got != c.want {
			t.Errorf("Crossed(%d, %d, %d) = %d, want %d", c.notified, c.used, c.limit, got, c.want)
		}
	}
}

func check(t *testing.T, got money.Micro, err error, want money.Micro, wantErr error) {
	t.Helper()
	if wantErr != nil {
		if !errors.Is(err, wantErr) {
			t.Fatalf("got %d, %v; want %v", got, err, wantErr)
		}
		return
	}
	if err != nil || got != want {
		t.Fatalf("got %d, %v; want %d", got, err, want)
	}
}
