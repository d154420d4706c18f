package main

import (
	"context"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `agent run --backend slurm` checks its flags, all of them at once, before it opens anything: each case
// either names its flag, or passes them and stops where an unenrolled agent does.
func TestAgentRunSlurmFlags(t *testing.T) {
	data := t.TempDir()
	token := filepath.Join(data, "slurm.jwt")
	if err := os.WriteFile(token, []byte("SLURM_JWT=eyJhbGciOi.x.y\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := []string{"run", "--data", data, "--backend", "slurm", "--slurm-url", "http://login1:6820", "--slurm-user", "tamarack",
		"--slurm-token-file", token}
	tests := []agentFlagCase{
		{name: "good flags", args: good, wants: []string{"is not enrolled"}},
		{name: "all of them", args: append(good, "--slurm-partition", "gpu", "--slurm-account", "acme_ai", "--slurm-qos", "normal",
			"--slurm-gres", "h100-80gb=h100, a100-80gb=a100", "--slurm-dir", "/shared/tamarack/jobs", "--slurm-images", "/shared/tamarack/images",
			"--slurm-step", "sudo -n /opt/tamarack/bin/tamarack"), wants: []string{"is not enrolled"}},
		{name: "from the environment", args: []string{"run", "--data", data, "--backend", "slurm"},
			env:   map[string]string{"TAMARACK_AGENT_SLURM_URL": "https://login1:6820", "TAMARACK_AGENT_SLURM_USER": "tamarack", "TAMARACK_AGENT_SLURM_TOKEN_FILE": token},
			wants: []string{"is not enrolled"}},
		{name: "missing url", args: []string{"run", "--data", data, "--backend", "slurm", "--slurm-user", "tamarack", "--slurm-token-file", token},
			wants: []string{"--slurm-url", "required"}},
		{name: "not a url", args: append(good, "--slurm-url", "login1:6820"), wants: []string{"--slurm-url"}},
		{name: "nothing at all", args: []string{"run", "--data", data, "--backend", "slurm"},
			wants: []string{"--slurm-url", "--slurm-user is required", "--slurm-token-file is required"}},
		{name: "root", args: append(good, "--slurm-user", "root"), wants: []string{"--slurm-user root"}},
		{name: "no token file", args: append(good, "--slurm-token-file", filepath.Join(data, "none")), wants: []string{"--slurm-token-file"}},
		{name: "bad gres", args: append(good, "--slurm-gres", "h100-80gb:h100"), wants: []string{"--slurm-gres", "MODEL=TYPE"}},
		{name: "unknown model", args: append(good, "--slurm-gres", "h100=h100"), wants: []string{"--slurm-gres", "unknown GPU model"}},
		{name: "model twice", args: append(good, "--slurm-gres", "h100-80gb=h100,h100-80gb=h100nvl"), wants: []string{"mapped twice"}},
		{name: "bad partition", args: append(good, "--slurm-partition", "gpu debug"), wants: []string{"--slurm-partition"}},
		{name: "bad qos", args: append(good, "--slurm-qos", "a/b"), wants: []string{"--slurm-qos"}},
		{name: "empty step", args: append(good, "--slurm-step", " "), wants: []string{"--slurm-step"}},
		{name: "declared gpus", args: append(good, "--gpus", "h100-80gb:8"), wants: []string{"--gpus"}},
		{name: "every problem at once", args: append(good, "--slurm-url", "", "--slurm-gres", "x", "--node", "n1"),
			wants: []string{"--slurm-url", "--slurm-gres", "--node"}},
		{name: "unknown backend", args: []string{"run", "--data", data, "--backend", "pbs"}, wants: []string{"want local, slurm, kubernetes or simulator"}},
	}
	refusedAgentFlags(t, tests)
}

// The options the flags make: defaults under the data directory, GRES by model, the step split on spaces, and
// a token read again at every call.
func TestAgentSlurmOptions(t *testing.T) {
	data := t.TempDir()
	token := filepath.Join(data, "slurm.jwt")
	if err := os.WriteFile(token, []byte("tok-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := slurmFlags{url: ptr("http://login1:6820/"), user: ptr("tamarack"), tokenFile: &token, partition: ptr("gpu"), account: ptr(""),
		qos: ptr(""), gres: ptr("h100-80gb=h100"), dir: ptr(""), images: ptr(""), step: ptr("sudo -n  /usr/local/bin/tamarack")}
	opts, images, err := f.options(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	if opts.URL != "http://login1:6820" || opts.User != "tamarack" || opts.Partition != "gpu" || opts.Dir != filepath.Join(data, "slurm-jobs") ||
		images != filepath.Join(data, "images") || !maps.Equal(opts.GRES, map[string]string{"h100-80gb": "h100"}) ||
		strings.Join(opts.StepCommand, "|") != "sudo|-n|/usr/local/bin/tamarack" {
		t.Fatalf("options %+v, images %s", opts, images)
	}
	if got, err := opts.Token(); got != "tok-1" || err != nil {
		t.Fatalf("token %q, %v", got, err)
	}
	// The site's cron job refreshes the file: the next call reads the new token.
	if err := os.WriteFile(token, []byte("SLURM_JWT=tok-2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := opts.Token(); got != "tok-2" || err != nil {
		t.Fatalf("refreshed token %q, %v", got, err)
	}
}

func ptr(s string) *string { return &s }

// agentFlagCase is an `agent run` command line that must be refused, with what the error must mention.
type agentFlagCase struct {
	name  string
	args  []string
	env   map[string]string
	wants []string // substrings of the error
}

// refusedAgentFlags runs each case as a subtest and checks that the agent refuses it with every wanted word.
func refusedAgentFlags(t *testing.T, tests []agentFlagCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			err := agentCmd(context.Background(), tt.args, io.Discard, io.Discard)
			if err == nil {
				t.Fatal("agent run succeeded")
			}
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q, want it to mention %q", err, w)
				}
			}
		})
	}
}

func TestReadSlurmToken(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content, want string
	}{
		{"the token alone", "eyJhbGciOiJIUzI1NiJ9.e30.sig", "eyJhbGciOiJIUzI1NiJ9.e30.sig"},
		{"with whitespace", "  \n\teyJ.a.b  \r\n\n", "eyJ.a.b"},
		{"as scontrol prints it", "SLURM_JWT=eyJ.a.b\n", "eyJ.a.b"},
		{"exported", "# refreshed by cron\nexport SLURM_JWT=eyJ.a.b\n", "eyJ.a.b"},
		{"empty", "\n  \n", ""},
		{"empty assignment", "SLURM_JWT=\n", ""},
		{"prose", "no token here\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			if err := os.WriteFile(p, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := readSlurmToken(p)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("read %q from %q, want an error", got, tc.content)
				}
				if strings.Contains(err.Error(), "no token here") {
					t.Errorf("the error quotes the file: %v", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("read %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
