package cdi

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// tree makes files (ending in "/" for directories, "-> target" for symlinks) under dir.
func tree(t *testing.T, dir string, entries ...string) {
	t.Helper()
	for _, e := range entries {
		name, target, link := strings.Cut(e, " -> ")
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case link:
			err = os.Symlink(target, p)
		case strings.HasSuffix(name, "/"):
			err = os.MkdirAll(p, 0o755)
		case strings.HasSuffix(name, "*"):
			err = os.WriteFile(strings.TrimSuffix(p, "*"), []byte("#!/bin/sh\n"), 0o755)
		default:
			err = os.WriteFile(p, []byte("x"), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// describe lists a layout's grafts as "at: entries" with entries sorted, links as name->target and
// directories with a trailing slash.
func describe(lay layoutResult) []string {
	var out []string
	for _, g := range lay.Grafts {
		var es []string
		for _, rel := range slices.Sorted(maps.Keys(g.entries)) {
			e := g.entries[rel]
			switch e.kind {
			case entryDir:
				rel += "/"
			case entryLink:
				rel += "->" + e.target
			}
			es = append(es, rel)
		}
		out = append(out, g.At+" (over "+g.Lower+"): "+strings.Join(es, " "))
	}
	return out
}

func TestLayout(t *testing.T) {
	t.Parallel()
	host := t.TempDir()
	tree(t, host, "lib64/libcuda.so.580", "lib64/libnvidia-ml.so.580", "bin/nvidia-smi*", "firmware/gsp.bin", "null")
	h := func(p string) string { return filepath.Join(host, p) }
	tmpfs := func(dest string) specs.Mount { return specs.Mount{Destination: dest, Type: "tmpfs", Source: "tmpfs"} }
	bind := func(dest, src string) specs.Mount {
		return specs.Mount{Destination: dest, Type: "bind", Source: src, Options: []string{"rbind", "ro"}}
	}

	tests := []struct {
		name  string
		image []string // the root's entries
		binds func(root string) []specs.Mount
		plan  Plan
		// want are the grafts (describe); wantDest the resolved mount destinations; wantBin PATH's additions.
		want     []string
		wantDest []string
		wantBin  []string
		wantErr  string
	}{
		{
			name:  "driver folder absent: one graft at the deepest existing directory holds the whole tree",
			image: []string{"usr/local/bin/", "usr/local/lib/python3/x.py"},
			plan: Plan{
				Mounts: []Mount{
					{HostPath: h("lib64/libcuda.so.580"), ContainerPath: "/usr/local/nvidia/lib64/libcuda.so.580"},
					{HostPath: h("bin/nvidia-smi"), ContainerPath: "/usr/local/nvidia/bin/nvidia-smi"},
					{HostPath: h("firmware"), ContainerPath: "/usr/local/nvidia/firmware/580"},
				},
				Links: []Link{
					{Target: "libcuda.so.580", Path: "/usr/local/nvidia/lib64/libcuda.so.1"},
					{Target: "../libnvidia-allocator.so.1", Path: "/usr/local/nvidia/lib64/gbm/nvidia-drm_gbm.so"},
				},
			},
			want: []string{"/usr/local (over ROOT/usr/local): nvidia/ nvidia/bin/ nvidia/bin/nvidia-smi nvidia/firmware/ nvidia/firmware/580/ " +
				"nvidia/lib64/ nvidia/lib64/gbm/ nvidia/lib64/gbm/nvidia-drm_gbm.so->../libnvidia-allocator.so.1 " +
				"nvidia/lib64/libcuda.so.1->libcuda.so.580 nvidia/lib64/libcuda.so.580"},
			wantDest: []string{"/usr/local/nvidia/lib64/libcuda.so.580", "/usr/local/nvidia/bin/nvidia-smi", "/usr/local/nvidia/firmware/580"},
			wantBin:  []string{"/usr/local/nvidia/bin"},
		},
		{
			name:  "a root with /etc/profile.d gets a script there that puts the driver's tools back on a login shell's PATH",
			image: []string{"usr/local/", "etc/profile.d/bash_completion.sh"},
			plan: Plan{Mounts: []Mount{
				{HostPath: h("bin/nvidia-smi"), ContainerPath: "/usr/local/nvidia/bin/nvidia-smi"},
				{HostPath: h("bin/nvidia-smi"), ContainerPath: "/usr/bin/nvidia-smi"}, // already on every PATH
			}},
			want: []string{
				"/usr (over ROOT/usr): bin/ bin/nvidia-smi", // outer grafts first
				"/etc/profile.d (over ROOT/etc/profile.d): tamarack-gpu.sh",
				"/usr/local (over ROOT/usr/local): nvidia/ nvidia/bin/ nvidia/bin/nvidia-smi",
			},
			wantDest: []string{"/usr/local/nvidia/bin/nvidia-smi", "/usr/bin/nvidia-smi"},
			wantBin:  []string{"/usr/local/nvidia/bin", "/usr/bin"},
		},
		{
			name:  "a distribution's library folder that exists gets only what it lacks; a link it has already is left",
			image: []string{"usr/lib/x86_64-linux-gnu/libc.so.6", "usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1 -> libnvidia-ml.so.580", "lib -> usr/lib"},
			plan: Plan{
				Mounts: []Mount{
					{HostPath: h("lib64/libcuda.so.580"), ContainerPath: "/lib/x86_64-linux-gnu/libcuda.so.580"},
					{HostPath: h("lib64/libnvidia-ml.so.580"), ContainerPath: "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.580"},
				},
				Links: []Link{
					{Target: "libcuda.so.580", Path: "/usr/lib/x86_64-linux-gnu/libcuda.so.1"},
					{Target: "libnvidia-ml.so.580", Path: "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1"},
				},
			},
			want: []string{"/usr/lib/x86_64-linux-gnu (over ROOT/usr/lib/x86_64-linux-gnu): libcuda.so.1->libcuda.so.580 libcuda.so.580 libnvidia-ml.so.580"},
			// Through the image's /lib -> usr/lib, as the runtime resolves it.
			wantDest: []string{"/usr/lib/x86_64-linux-gnu/libcuda.so.580", "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.580"},
		},
		{
			name:     "a path through an absolute symlink into a tmpfs needs no graft: the runtime makes it there",
			image:    []string{"var/run -> /run", "run/"},
			binds:    func(string) []specs.Mount { return []specs.Mount{tmpfs("/run")} },
			plan:     Plan{Mounts: []Mount{{HostPath: h("null"), ContainerPath: "/var/run/nvidia-container-devices/void"}}},
			wantDest: []string{"/run/nvidia-container-devices/void"},
		},
		{
			name:  "under a bind (the host view's /usr) the graft lies over the bound host directory",
			image: []string{"usr/"},
			binds: func(root string) []specs.Mount {
				hostUsr := filepath.Join(filepath.Dir(root), "hostusr")
				tree(t, hostUsr, "local/bin/")
				return []specs.Mount{bind("/usr", hostUsr)}
			},
			plan:     Plan{Mounts: []Mount{{HostPath: h("lib64/libcuda.so.580"), ContainerPath: "/usr/local/nvidia/lib64/libcuda.so.580"}}},
			want:     []string{"/usr/local (over HOSTUSR/local): nvidia/ nvidia/lib64/ nvidia/lib64/libcuda.so.580"},
			wantDest: []string{"/usr/local/nvidia/lib64/libcuda.so.580"},
		},
		{
			name:  "the spec's own mounts inside a graft get their mount points there",
			image: []string{"etc/passwd"},
			binds: func(root string) []specs.Mount {
				return []specs.Mount{bind("/etc/hostname", h("null"))}
			},
			plan:     Plan{Mounts: []Mount{{HostPath: h("null"), ContainerPath: "/etc/vulkan/icd.d/nvidia_icd.json"}}},
			want:     []string{"/etc (over ROOT/etc): hostname vulkan/ vulkan/icd.d/ vulkan/icd.d/nvidia_icd.json"},
			wantDest: []string{"/etc/vulkan/icd.d/nvidia_icd.json"},
		},
		{
			name:    "nothing is grafted onto the root directory itself",
			image:   []string{"usr/"},
			plan:    Plan{Mounts: []Mount{{HostPath: h("null"), ContainerPath: "/opt/nvidia/x"}}},
			wantErr: "/ lacks opt",
		},
		{
			name:    "a host file the spec names but the host lacks: the spec is stale",
			image:   []string{"usr/"},
			plan:    Plan{Mounts: []Mount{{HostPath: h("lib64/libcuda.so.570"), ContainerPath: "/usr/lib/libcuda.so.570"}}},
			wantErr: "regenerate the CDI spec",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			root := filepath.Join(dir, "root")
			tree(t, root, append([]string{"./"}, tt.image...)...)
			s := &specs.Spec{Root: &specs.Root{Path: root}}
			if tt.binds != nil {
				s.Mounts = tt.binds(root)
			}
			lay, err := layout(s, tt.plan)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("layout = %v, want an error saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := describe(lay)
			for i := range got {
				got[i] = strings.NewReplacer(filepath.Join(dir, "hostusr"), "HOSTUSR", root, "ROOT").Replace(got[i])
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("grafts:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			var dests []string
			for _, m := range lay.Mounts {
				dests = append(dests, m.ContainerPath)
			}
			if !slices.Equal(dests, tt.wantDest) {
				t.Errorf("destinations %v, want %v", dests, tt.wantDest)
			}
			if !slices.Equal(lay.BinDirs, tt.wantBin) {
				t.Errorf("bin folders %v, want %v", lay.BinDirs, tt.wantBin)
			}
			for _, g := range lay.Grafts {
				if e, ok := g.entries[profileScript]; ok && e.content != profile([]string{"/usr/local/nvidia/bin"}) {
					t.Errorf("profile script %q", e.content)
				}
			}
		})
	}
}

func TestMaterialize(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	g := &graft{At: "/usr/local", Lower: "/usr/local", entries: map[string]entry{
		"profile.sh":                 {kind: entryFile, content: "PATH=x\n"},
		"nvidia":                     {kind: entryDir},
		"nvidia/lib64":               {kind: entryDir},
		"nvidia/lib64/libcuda.so.1":  {kind: entryLink, target: "libcuda.so.580"},
		"nvidia/lib64/libcuda.so.58": {kind: entryFile},
	}}
	dirs, err := materialize(dir, []*graft{g})
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) != 1 || dirs[0] != filepath.Join(dir, "0") {
		t.Fatalf("dirs %v", dirs)
	}
	if target, err := os.Readlink(filepath.Join(dir, "0/nvidia/lib64/libcuda.so.1")); err != nil || target != "libcuda.so.580" {
		t.Errorf("link: %q, %v", target, err)
	}
	if data, err := os.ReadFile(filepath.Join(dir, "0/profile.sh")); err != nil || string(data) != "PATH=x\n" {
		t.Errorf("file with content: %q, %v", data, err)
	}
	fi, err := os.Stat(filepath.Join(dir, "0/nvidia/lib64/libcuda.so.58"))
	if err != nil || fi.Size() != 0 || fi.Mode().Perm() != 0o444 {
		t.Errorf("mount point: %v, %v; want an empty read-only file", fi, err)
	}
}
