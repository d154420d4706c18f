package main

import (
	"io"
	"strings"
	"testing"

	"github.com/tamarack-ai/tamarack/billing"
)

// TestConfigProgrammeLegalName: receipts and statements carry the programme's legal name, a default when unset,
// the environment's or the flag's otherwise; a blank one is refused.
func TestConfigProgrammeLegalName(t *testing.T) {
	c := newConfig("test")
	c.fs.SetOutput(io.Discard)
	if err := c.parse(nil); err != nil || c.ProgrammeLegalName != billing.DefaultProgrammeLegalName {
		t.Fatalf("default: %q %v", c.ProgrammeLegalName, err)
	}
	t.Setenv("TAMARACK_PROGRAMME_LEGAL_NAME", "Programme pancanadien de calcul")
	c = newConfig("test")
	c.fs.SetOutput(io.Discard)
	if err := c.parse(nil); err != nil || c.ProgrammeLegalName != "Programme pancanadien de calcul" {
		t.Fatalf("from the environment: %q %v", c.ProgrammeLegalName, err)
	}
	c = newConfig("test")
	c.fs.SetOutput(io.Discard)
	if err := c.parse([]string{"--programme-legal-name", "  "}); err == nil || !strings.Contains(err.Error(), "--programme-legal-name") {
		t.Fatalf("blank name accepted: %v", err)
	}
}

// TestConfigTax: no tax by default; a rate with its name (and a registration number) from the flags or the
// environment reaches billing's setting; a rate without a name, or out of range, is refused.
func TestConfigTax(t *testing.T) {
	c := newConfig("test")
	c.fs.SetOutput(io.Discard)
	if err := c.parse(nil); err != nil || c.tax() != (billing.Tax{}) {
		t.Fatalf("default: %+v %v", c.tax(), err)
	}
	t.Setenv("TAMARACK_TAX_REGISTRATION", " 123456789RT0001 ")
	c = newConfig("test")
	c.fs.SetOutput(io.Discard)
	if err := c.parse([]string{"--tax-rate-bp", "1300", "--tax-name", "GST/HST"}); err != nil ||
		c.tax() != (billing.Tax{RateBP: 1300, Name: "GST/HST", Registration: "123456789RT0001"}) {
		t.Fatalf("flags and environment: %+v %v", c.tax(), err)
	}
	for _, args := range [][]string{{"--tax-rate-bp", "1300"}, {"--tax-rate-bp", "-5", "--tax-name", "GST"}, {"--tax-rate-bp", "10001", "--tax-name", "GST"}} {
		c = newConfig("test")
		c.fs.SetOutput(io.Discard)
		if err := c.parse(args); err == nil || !strings.Contains(err.Error(), "--tax-rate-bp") {
			t.Errorf("%v accepted: %v", args, err)
		}
	}
}
