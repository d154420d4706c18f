package image

import (
	"errors"
	"strings"
	"testing"
)

const dg = "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestPolicyCheck(t *testing.T) {
	t.Parallel()
	p := Policy{Allow: []string{
		"ghcr.io/acme/",                  // any repository under the prefix
		"docker.io/library/python",       // any digest of one repository
		"registry.example.com/tool" + dg, // exactly one image
		"127.0.0.1:5001/tamarack/",
	}}
	for _, tc := range []struct {
		ref   string
		allow bool
	}{
		{"ghcr.io/acme/trainer" + dg, true},
		{"ghcr.io/acme/team/model" + dg, true},
		{"ghcr.io/acme-evil/x" + dg, false},
		{"ghcr.io/acme" + dg, false},
		{"docker.io/library/python" + dg, true}, // normalised to index.docker.io/library/python
		{"index.docker.io/library/python" + dg, true},
		{"docker.io/library/pythonx" + dg, false},
		{"registry.example.com/tool" + dg, true},
		{"registry.example.com/tool@sha256:" + strings.Repeat("f", 64), false},
		{"127.0.0.1:5001/tamarack/shell" + dg, true},
		{"127.0.0.1:5002/tamarack/shell" + dg, false},
	} {
		err := p.Check(tc.ref)
		if (err == nil) != tc.allow {
			t.Errorf("Check(%s) = %v, want allowed=%v", tc.ref, err, tc.allow)
		}
		if err != nil && !errors.Is(err, ErrNotAllowed) {
			t.Errorf("Check(%s) = %v, want ErrNotAllowed", tc.ref, err)
		}
	}
	for _, ref := range []string{"ghcr.io/acme/trainer:latest", "python" + dg, "ghcr.io/acme/x@sha512:" + strings.Repeat("0", 128)} {
		if err := p.Check(ref); !errors.Is(err, ErrNotPinned) {
			t.Errorf("Check(%s) = %v, want ErrNotPinned", ref, err)
		}
	}
	if err := (Policy{}).Check("ghcr.io/acme/x" + dg); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("zero policy: %v", err)
	}
	if err := (Policy{}).With("ghcr.io/acme/").Check("ghcr.io/acme/x" + dg); err != nil {
		t.Errorf("With: %v", err)
	}
}

func TestFromSettings(t *testing.T) {
	t.Parallel()
	p, creds, err := FromSettings(map[string]string{
		SettingAllow:                            "ghcr.io/acme/, docker.io/library/python\nregistry.example.com/tool" + dg,
		"images.auth.ghcr.io":                   "bot:tok:en", // the password may hold colons
		"images.auth.registry.example.com:5000": "u:p",
		"partition":                             "gpu", // other backends' settings are not ours
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Allow) != 3 || creds["ghcr.io"] != (Basic{"bot", "tok:en"}) || creds["registry.example.com:5000"] != (Basic{"u", "p"}) {
		t.Errorf("FromSettings = %+v, %+v", p, creds)
	}
	_, _, err = FromSettings(map[string]string{
		SettingAllow:             "ghcr.io/acme/x:latest@sha256:nothex UPPER/Case",
		"images.auth.ghcr.io":    "no-colon",
		"images.auth.bad host/x": "u:p",
	})
	if err == nil {
		t.Fatal("bad settings accepted")
	}
	for _, want := range []string{"nothex", "UPPER/Case", "images.auth.ghcr.io", "images.auth.bad host/x"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}
