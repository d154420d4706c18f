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
