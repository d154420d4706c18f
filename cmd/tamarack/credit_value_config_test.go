package main

import (
	"io"
	"strings"
	"testing"

	"github.com/tamarack-ai/tamarack/platform/money"
)

// TestConfigCreditValue: 1.00 CAD by default; a value is parsed exactly; a bad one, or a non-CAD value with card
// payments on, is refused at start with the setting's name.
func TestConfigCreditValue(t *testing.T) {
	parse := func(args ...string) (*config, error) {
		c := newConfig("test")
		c.fs.SetOutput(io.Discard)
		return c, c.parse(args)
	}
	c, err := parse()
	if err != nil || c.creditValue != money.DefaultCreditValue {
		t.Fatalf("default: %+v %v", c.creditValue, err)
	}
	if c, err = parse("--credit-value", "1.25 EUR"); err != nil || c.creditValue != (money.CreditValue{Currency: "EUR", Micro: 1_250_000}) {
		t.Fatalf("1.25 EUR: %+v %v", c.creditValue, err)
	}
	for _, args := range [][]string{
		{"--credit-value", "one dollar"},
		{"--credit-value", "0 CAD"},
		{"--credit-value", "1.00 EUR", "--stripe-key", "sk_test_1", "--stripe-webhook-secret", "whsec_1"},
		{"--credit-value", "1.005 CAD", "--stripe-key", "sk_test_1", "--stripe-webhook-secret", "whsec_1"},
	} {
		if _, err := parse(args...); err == nil || !strings.Contains(err.Error(), "--credit-value") {
			t.Errorf("%q: %v, want a --credit-value error", args, err)
		}
	}
}
