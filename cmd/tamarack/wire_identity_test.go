package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestSeedIdentityIdempotentAndPromote runs the real subcommands in-process on a fresh data directory.
func TestSeedIdentityIdempotentAndPromote(t *testing.T) {
	dir := t.TempDir()
	args := []string{"--only=identity", "--data=" + dir, "--log-level=error"}
	var first demo
	for i := 0; i < 2; i++ {
		c := newConfig("seed")
		if err := c.parse(args); err != nil {
			t.Fatal(err)
		}
		e, done, err := toolEnv(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		d := &demo{Password: "tamarack-demo-2026"}
		err = seedIdentity(context.Background(), e, d)
		done()
		if err != nil {
			t.Fatalf("seed %d: %v", i, err)
		}
		for name, id := range map[string]string{"staff": d.StaffUserID, "vendor": d.VendorUserID, "sme": d.SMEUserID, "partner": d.PartnerUserID,
			"programme org": d.ProgrammeOrgID, "vendor org": d.VendorOrgID, "sme org": d.SMEOrgID, "partner org": d.PartnerOrgID} {
			if id == "" {
				t.Fatalf("seed left %s empty", name)
			}
		}
		if i == 0 {
			first = *d
		} else if first.SMEOrgID != d.SMEOrgID || first.StaffUserID != d.StaffUserID || first.VendorOrgID != d.VendorOrgID {
			t.Fatalf("second seed made new rows: %+v vs %+v", first, *d)
		}
	}

	var out, errOut bytes.Buffer
	if err := run(append([]string{"seed", "--demo"}, args...), &out, &errOut); err != nil {
		t.Fatalf("tamarack seed --demo: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "staff@tamarack.demo") || !strings.Contains(out.String(), "sme@tamarack.demo") {
		t.Fatalf("seed output: %s", out.String())
	}
	out.Reset()
	if err := run(append([]string{"users", "promote", "partner@tamarack.demo"}, args...), &out, &errOut); err != nil {
		t.Fatalf("promote: %v", err)
	}
	if !strings.Contains(out.String(), "now programme staff") {
		t.Fatalf("promote output: %s", out.String())
	}
	err := run(append([]string{"users", "promote", "nobody@tamarack.demo"}, args...), &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), `no user with e-mail "nobody@tamarack.demo"`) {
		t.Fatalf("promote of an unknown user: %v", err)
	}

	out.Reset()
	c := newConfig("keys")
	if err := c.parse(args); err != nil {
		t.Fatal(err)
	}
	if err := rotateIdentityKey(context.Background(), c, &out); err != nil || !strings.Contains(out.String(), "new signing key") {
		t.Fatalf("rotate: %v %s", err, out.String())
	}
}
