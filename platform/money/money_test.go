package money

import (
	"errors"
	"math"
	"testing"
)

func TestParseAndString(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want Micro
		str  string
	}{
		{"12", 12_000_000, "12.00"},
		{"0.5", 500_000, "0.50"},
		{"-0.000001", -1, "-0.000001"},
		{"1,234.5", 1_234_500_000, "1,234.50"},
		{".25", 250_000, "0.25"},
		{"9223372036854.775807", math.MaxInt64, "9,223,372,036,854.775807"},
	}
	for _, c := range cases {
		got, err := Parse(c.in)
		if err != nil || got != c.want {
			t.Errorf("Parse(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
		if s := got.String(); s != c.str {
			t.Errorf("String(%d) = %q; want %q", got, s, c.str)
		}
	}
	if s := Micro(math.MinInt64).String(); s != "-9,223,372,036,854.775808" {
		t.Errorf("MinInt64 = %q", s)
	}
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "-", ".", "1.2345678", "abc", "1e5", "12.3.4", "9223372036854.775808", "99999999999999999999"} {
		if _, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) accepted", in)
		}
	}
	if _, err := Parse("99999999999999999999"); !errors.Is(err, ErrOverflow) {
		t.Errorf("want overflow, got %v", err)
	}
}

func TestMulDivIsExactAndChecked(t *testing.T) {
	t.Parallel()
	// 2.5 credits per GPU-hour for 4 GPUs for 90 seconds.
	got, err := MulDiv(Credits(25)/10, 4*90, 3600)
	if err != nil || got != 250_000 {
		t.Fatalf("got %d, %v", got, err)
	}
	// Large intermediate product does not overflow.
	got, err = MulDiv(math.MaxInt64/2, 3600, 3600)
	if err != nil || got != math.MaxInt64/2 {
		t.Fatalf("got %d, %v", got, err)
	}
	if _, err := MulDiv(math.MaxInt64, 2, 1); !errors.Is(err, ErrOverflow) {
		t.Fatalf("want overflow, got %v", err)
	}
	if _, err := MulDiv(-1, 1, 1); err == nil {
		t.Fatal("negative accepted")
	}
	if _, err := Add(math.MaxInt64, 1); !errors.Is(err, ErrOverflow) {
		t.Fatal("Add overflow not detected")
	}
}

func TestPerGPUHour(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name         string
		price        Micro
		gpus, millis int64
		want         Micro
		err          error
	}{
		{"one GPU-hour is the price", 2_500_000, 1, 3_600_000, 2_500_000, nil},
		{"4 GPUs for 90 s", Credits(25) / 10, 4, 90_000, 250_000, nil},
		{"rounded down", 1, 1, 3_599_999, 0, nil},
		{"one micro-credit exactly", 1, 1, 3_600_000, 1, nil},
		{"just under two", 1_000_001, 1, 7_199_999, 2_000_001, nil}, // 1,000,001 × 7,199,999 / 3.6e6 = 2,000,001.72
		{"zero time", 9_000_000, 8, 0, 0, nil},
		{"zero GPUs", 9_000_000, 0, 3_600_000, 0, nil},
		{"zero price", 0, 8, 3_600_000, 0, nil},
		{"intermediate product beyond int64", math.MaxInt64 / 2, 1, 3_600_000, math.MaxInt64 / 2, nil},
		{"largest result", math.MaxInt64, 1, 3_600_000, math.MaxInt64, nil},
		{"result beyond int64", math.MaxInt64, 2, 3_600_000, 0, ErrOverflow},
		{"gpus × millis beyond int64", 1, math.MaxInt64, 2, 0, ErrOverflow},
		{"gpus × millis beyond uint64", 1, math.MaxInt64, math.MaxInt64, 0, ErrOverflow},
		{"negative price", -1, 1, 1, 0, ErrInvalid},
		{"negative gpus", 1, -1, 1, 0, ErrInvalid},
		{"negative millis", 1, 1, -1, 0, ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := PerGPUHour(c.price, c.gpus, c.millis)
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("PerGPUHour(%d, %d, %d) = %d, %v; want %v", c.price, c.gpus, c.millis, got, err, c.err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("PerGPUHour(%d, %d, %d) = %d, %v; want %d", c.price, c.gpus, c.millis, got, err, c.want)
			}
		})
	}
}

func FuzzParseRoundTrip(f *testing.F) {
	for _, s := range []string{"0", "1.5", "-3.000001", "1,000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := Parse(s)
		if err != nil {
			return
		}
		back, err := Parse(m.String())
		if err != nil || back != m {
			t.Fatalf("%q -> %d -> %q -> %d, %v", s, m, m.String(), back, err)
		}
	})
}

func TestParseCreditValue(t *testing.T) {
	t.Parallel()
	good := []struct {
		in   string
		want CreditValue
		str  string
	}{
		{"1.00 CAD", CreditValue{"CAD", 1_000_000}, "1.00 CAD"},
		{" 0.125 EUR ", CreditValue{"EUR", 125_000}, "0.125 EUR"},
		{"2 USD", CreditValue{"USD", 2_000_000}, "2.00 USD"},
		{"1000 JPY", CreditValue{"JPY", 1_000_000_000}, "1000.00 JPY"},
	}
	for _, c := range good {
		got, err := ParseCreditValue(c.in)
		if err != nil || got != c.want || got.String() != c.str {
			t.Errorf("ParseCreditValue(%q) = %+v %q, %v; want %+v %q", c.in, got, got.String(), err, c.want, c.str)
		}
	}
	for _, in := range []string{"", "1.00", "CAD", "1.00 cad", "1.00 CADX", "0 CAD", "-1 CAD", "1,00 CAD", "1.0000001 CAD", "abc CAD", "+1 CAD"} {
		if v, err := ParseCreditValue(in); err == nil {
			t.Errorf("ParseCreditValue(%q) = %+v, want an error", in, v)
		}
	}
	if c, whole := (CreditValue{"CAD", 1_250_000}).Cents(); c != 125 || !whole {
		t.Errorf("Cents of 1.25 = %d %v", c, whole)
	}
	if _, whole := (CreditValue{"CAD", 1_255_000}).Cents(); whole {
		t.Error("1.255 is not a whole number of cents")
	}
}
