// Package money holds Tamarack's one representation of value: int64 micro-credits. It parses and formats
// amounts for people; it never uses floating point, so no rounding can create or lose value.
package money

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strings"
)

// Micro is an amount in micro-credits (one credit = 1,000,000 micro-credits).
type Micro int64

// PerCredit is the number of micro-credits in one credit.
const PerCredit Micro = 1_000_000

// Credits returns n whole credits.
func Credits(n int64) Micro { return Micro(n) * PerCredit }

// ErrInvalid is returned for text that is not a decimal amount with at most six fractional digits.
var ErrInvalid = errors.New("invalid amount")

// ErrOverflow is returned when an amount or a product does not fit in int64 micro-credits.
var ErrOverflow = errors.New("amount out of range")

// Parse reads a decimal credit amount such as "12", "-0.5" or "1,234.000001".
func Parse(s string) (Micro, error) {
	s = strings.ReplaceAll(strings.TrimSpace(s), ",", "")
	if s == "" {
		return 0, ErrInvalid
	}
	neg := false
	if s[0] == '-' || s[0] == '+' {
		neg = s[0] == '-'
		s = s[1:]
	}
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" && (!hasDot || frac == "") {
		return 0, ErrInvalid
	}
	if len(frac) > 6 {
		return 0, fmt.Errorf("%w: more than six decimal places", ErrInvalid)
	}
	var v uint64
	for _, r := range whole + frac + strings.Repeat("0", 6-len(frac)) {
		if r < '0' || r > '9' {
			return 0, ErrInvalid
		}
		hi, lo := bits.Mul64(v, 10)
		v = lo + uint64(r-'0')
		if hi != 0 || lo > math.MaxInt64 || v > math.MaxInt64 {
			return 0, ErrOverflow
		}
	}
	if neg {
		return -Micro(v), nil
	}
	return Micro(v), nil
}

// String formats the amount as credits with the fractional digits it needs (at least two), e.g. "12.50".
func (m Micro) String() string {
	sign := ""
	u := uint64(m)
	if m < 0 {
		sign = "-"
		u = uint64(-(m + 1)) + 1 // safe for MinInt64
	}
	whole, frac := u/1_000_000, u%1_000_000
	f := strings.TrimRight(fmt.Sprintf("%06d", frac), "0")
	for len(f) < 2 {
		f += "0"
	}
	return fmt.Sprintf("%s%s.%s", sign, groupThousands(whole), f)
}

func groupThousands(n uint64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Add returns a+b or ErrOverflow.
func Add(a, b Micro) (Micro, error) {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		return 0, ErrOverflow
	}
	return s, nil
}

// MulDiv returns a*num/den rounded down (toward negative infinity for negative results is not needed:
// callers pass non-negative values), computed in 128 bits so that price × seconds never overflows midway.
func MulDiv(a Micro, num, den int64) (Micro, error) {
	if a < 0 || num < 0 || den <= 0 {
		return 0, fmt.Errorf("%w: MulDiv takes non-negative operands and a positive divisor", ErrInvalid)
	}
	hi, lo := bits.Mul64(uint64(a), uint64(num))
	if hi >= uint64(den) {
		return 0, ErrOverflow
	}
	q, _ := bits.Div64(hi, lo, uint64(den))
	if q > math.MaxInt64 {
		return 0, ErrOverflow
	}
	return Micro(q), nil
}

// MillisPerHour is the number of milliseconds in an hour: the divisor of every per-GPU-hour price.
const MillisPerHour = 3_600_000

// PerGPUHour is the cost of gpus devices for millis milliseconds at price per GPU-hour, rounded down:
// floor(price × gpus × millis / 3,600,000), computed in 128 bits. It is the one price formula of metered
// compute (billing's charges and holds, the testbed's running estimate). Negative operands are ErrInvalid; a
// product of gpus × millis or a result beyond int64 is ErrOverflow.
func PerGPUHour(price Micro, gpus, millis int64) (Micro, error) {
	if price < 0 || gpus < 0 || millis < 0 {
		return 0, fmt.Errorf("%w: price %d per GPU-hour for %d GPUs × %d ms: operands must not be negative", ErrInvalid, price, gpus, millis)
	}
	hi, gpuMillis := bits.Mul64(uint64(gpus), uint64(millis))
	if hi != 0 || gpuMillis > math.MaxInt64 {
		return 0, fmt.Errorf("%w: %d GPUs × %d ms", ErrOverflow, gpus, millis)
	}
	v, err := MulDiv(price, int64(gpuMillis), MillisPerHour)
	if err != nil {
		return 0, fmt.Errorf("price %d per GPU-hour × %d GPU-ms: %w", price, gpuMillis, err)
	}
	return v, nil
}

// CreditValue is what one credit is worth, set by the programme: an ISO 4217 currency and an exact amount of it
// in millionths of the currency unit (so "1.00 CAD" is {CAD, 1_000_000} and "0.125 EUR" is {EUR, 125_000}).
// Integers only: a fiat price is never held in a float either.
type CreditValue struct {
	Currency string // ISO 4217, upper case
	Micro    int64  // millionths of one currency unit per credit; > 0
}

// DefaultCreditValue is 1 credit = 1.00 CAD, the programme's price since the start.
var DefaultCreditValue = CreditValue{Currency: "CAD", Micro: 1_000_000}

// ParseCreditValue reads "1.00 CAD" (an amount with at most six decimals, a space, an ISO 4217 code).
func ParseCreditValue(s string) (CreditValue, error) {
	amount, code, ok := strings.Cut(strings.TrimSpace(s), " ")
	code = strings.TrimSpace(code)
	if !ok || !isCurrencyCode(code) {
		return CreditValue{}, fmt.Errorf("%w: want an amount and an ISO 4217 currency code, e.g. \"1.00 CAD\"", ErrInvalid)
	}
	if strings.ContainsAny(amount, ",+-") {
		return CreditValue{}, fmt.Errorf("%w: want a plain positive decimal amount, e.g. \"1.00 CAD\"", ErrInvalid)
	}
	m, err := Parse(amount)
	if err != nil {
		return CreditValue{}, err
	}
	if m <= 0 {
		return CreditValue{}, fmt.Errorf("%w: a credit must be worth more than zero", ErrInvalid)
	}
	return CreditValue{Currency: code, Micro: int64(m)}, nil
}

// isCurrencyCode accepts three upper-case ASCII letters (ISO 4217's alphabetic code shape).
func isCurrencyCode(s string) bool {
	if len(s) != 3 {
		return false
	}
	for _, r := range s {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}

// Amount is the value as a decimal string with at least two decimals, e.g. "1.00" (no grouping).
func (v CreditValue) Amount() string { return strings.ReplaceAll(Micro(v.Micro).String(), ",", "") }

// String is the setting's form, e.g. "1.00 CAD".
func (v CreditValue) String() string { return v.Amount() + " " + v.Currency }

// Cents is the value in hundredths of the currency unit, and whether it is a whole number of them (card
// payments charge whole cents).
func (v CreditValue) Cents() (int64, bool) { return v.Micro / 10_000, v.Micro%10_000 == 0 }
