package local

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	cdispec "tags.cncf.io/container-device-interface/specs-go"

	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/backend/local/cdi"
)

// The GPU test of issue 10: the CDI spec nvidia-ctk generated on a real H200 host (cdi/testdata), with
// its device nodes made by mknod in a temporary directory (same numbers, two GPUs) and its driver files
// faked there too; the container paths are the spec's. A sandbox given one GPU sees exactly that GPU's
// node, the driver's control nodes and files at their paths, the links of the spec's create-symlinks
// hook, and nothing else under /dev but the standard nodes.

const (
	fixtureUUID  = "GPU-f99132a9-66f1-44ad-bbae-b611c477a08b"
	fixtureUUID1 = "GPU-00000000-1111-2222-3333-444444444444" // a second GPU, added to the fixture
)

// fakeGPUHost rewrites the fixture for a host without GPUs and returns the CDI spec directory. The fake
// driver files hold "fake <name>"; nvidia-smi is a script that says so.
func fakeGPUHost(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	// The sandbox's root user reaches the bound files through every directory above them.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile("cdi/testdata/cdi-h200.json")
	if err != nil {
		t.Fatal(err)
	}
	var spec cdispec.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	// A second GPU, as nvidia-ctk would write it on a two-GPU host.
	second := func(name string) cdispec.Device {
		return cdispec.Device{Name: name, ContainerEdits: cdispec.ContainerEdits{
			DeviceNodes: []*cdispec.DeviceNode{{Path: "/dev/nvidia1", Major: 195, Minor: 1, Permissions: "rwm"}},
			Hooks: []*cdispec.Hook{{HookName: "createRuntime", Path: "/usr/bin/nvidia-cdi-hook",
				Args: []string{"nvidia-cdi-hook", "apply-cuda-memory-limits", "--driver-root", "", "--gpu-id", fixtureUUID1}}},
		}}
	}
	spec.Devices = append(spec.Devices, second("1"), second(fixtureUUID1))
	nodes := filepath.Join(dir, "dev")
	if err := os.Mkdir(nodes, 0o755); err != nil {
		t.Fatal(err)
	}
	mknod := func(n *cdispec.DeviceNode) {
		n.HostPath = filepath.Join(nodes, filepath.Base(n.Path))
		if _, err := os.Stat(n.HostPath); err == nil {
			return
		}
		if err := unix.Mknod(n.HostPath, unix.S_IFCHR|0o666, int(unix.Mkdev(uint32(n.Major), uint32(n.Minor)))); err != nil {
			t.Fatalf("mknod %s: %v", n.HostPath, err)
		}
	}
	for _, n := range spec.ContainerEdits.DeviceNodes {
		mknod(n)
	}
	for _, d := range spec.Devices {
		for _, n := range d.ContainerEdits.DeviceNodes {
			mknod(n)
		}
	}
	driver := filepath.Join(dir, "driver")
	for _, m := range spec.ContainerEdits.Mounts {
		if m.HostPath == "/dev/null" {
			continue // the toolkit's "void" marker: the host's own /dev/null is fine
		}
		p := filepath.Join(driver, m.HostPath)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		content, mode := "fake "+filepath.Base(p)+"\n", os.FileMode(0o644)
		if filepath.Base(p) == "nvidia-smi" {
			content, mode = "#!/bin/sh\necho 'GPU 0: fake H200'\n", 0o755
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		m.HostPath = p
	}
	specDir := filepath.Join(dir, "cdi")
	if err := os.Mkdir(specDir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(specDir, "nvidia.json"), out, 0o644); err != nil {
		t.Fatal(err)
	}
	return specDir
}

// gpuScript prints what a sandbox sees of its GPUs, then waits (so the test can read its cgroup).
const gpuScript = `
echo "dev=$(ls /dev | sort | tr '\n' ' ')"
for n in /dev/nvidia*; do echo "node $(stat -c '%n %F %t:%T' $n)"; done
echo "libcuda=$(cat /usr/local/nvidia/lib64/libcuda.so.580.159.04)"
echo "libcuda.so.1=$(readlink /usr/local/nvidia/lib64/libcuda.so.1) $(cat /usr/local/nvidia/lib64/libcuda.so.1)"
echo "libcuda.so=$(readlink /usr/local/nvidia/lib64/libcuda.so)"
echo "gbm=$(readlink /usr/local/nvidia/lib64/gbm/nvidia-drm_gbm.so)"
echo "firmware=$(cat /usr/local/nvidia/firmware/nvidia/580.159.04/gsp_ga10x.bin)"
echo "smi=$(nvidia-smi)"
echo "ld=$LD_LIBRARY_PATH"
echo "path=$PATH"
echo "visible=$NVIDIA_VISIBLE_DEVICES cuda=$CUDA_VISIBLE_DEVICES libcudadir=$NVIDIA_CTK_LIBCUDA_DIR"
echo "local=$(ls /usr/local | tr '\n' ' ')"
if touch /usr/local/nvidia/lib64/x 2>/dev/null; then echo "graft writable"; else echo "graft read-only"; fi
grep ' /usr/local/nvidia/lib64/libcuda.so.580.159.04 ' /proc/self/mountinfo | cut -d' ' -f6 | sed 's/^/libopts=/'
echo done
sleep 600
`

func TestGPUFromCDI(t *testing.T) {
	t.Parallel()
	specDir := fakeGPUHost(t)
	reg, err := cdi.Open([]string{specDir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat("/usr/local/nvidia"); err == nil {
		t.Fatal("this host has a /usr/local/nvidia: the test would not show that it stays untouched")
	}
	tests := []struct {
		name   string
		image  bool
		dev    backend.Device
		node   string // the GPU node it must see
		notIt  string // the other GPU's
		minor  int64
		device string // the qualified CDI name it must get
	}{
		{name: "image root, second GPU by CDI name", image: true, dev: backend.Device{Index: 1, CDIName: "nvidia.com/gpu=1"},
			node: "/dev/nvidia1", notIt: "nvidia0", minor: 1, device: "nvidia.com/gpu=1"},
		{name: "host view, first GPU by UUID", dev: backend.Device{Index: 0, UUID: fixtureUUID, Paths: []string{"/dev/nvidia0"}},
			node: "/dev/nvidia0", notIt: "nvidia1", minor: 0, device: "nvidia.com/gpu=" + fixtureUUID},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// runc only: gVisor's runsc hands GPUs over through its own nvproxy.
			b := newBackendWith(t, RuntimeRunc, Options{Root: t.TempDir(), CgroupParent: runtimeParent(RuntimeRunc), FileEdits: []FileEdit{reg.Edit}})
			var root string
			var before []string
			if tt.image {
				root = busyboxRoot(t)
				// What a Debian image has, with the mount points this backend needs, so that anything
				// written into the image shows.
				tree := []string{"usr/local/bin/", "usr/share/", "etc/", "proc/", "dev/", "sys/", "tmp/", "run/", "home/sandbox/", "var/"}
				for _, d := range tree {
					if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
						t.Fatal(err)
					}
				}
				for _, f := range []string{"etc/hostname", "etc/hosts"} {
					if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				if err := os.Chmod(filepath.Join(root, "tmp"), 0o777|os.ModeSticky); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink("/run", filepath.Join(root, "var/run")); err != nil {
					t.Fatal(err)
				}
				before = snapshot(t, root)
			}
			id := "gpu-" + strconv.Itoa(i)
			start(t, b, backend.Spec{SandboxID: id, RootFS: root, Command: []string{"/bin/sh", "-c", gpuScript}, Devices: []backend.Device{tt.dev}})
			waitFor(t, 30*time.Second, "the sandbox's report", func() bool { return strings.Contains(logs(t, b, id), "done\n") })
			out := logs(t, b, id)
			t.Logf("sandbox output:\n%s", out)

			// /dev: the standard nodes, its own GPU and the control nodes; nothing else.
			var dev string
			for line := range strings.Lines(out) {
				if v, ok := strings.CutPrefix(line, "dev="); ok {
					dev = strings.TrimSpace(v)
				}
			}
			want := []string{"fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom", "zero",
				filepath.Base(tt.node), "nvidia-uvm", "nvidia-uvm-tools", "nvidiactl"}
			slices.Sort(want)
			if got := strings.Fields(dev); !slices.Equal(got, want) {
				t.Errorf("/dev holds %v, want exactly %v", got, want)
			}
			for _, w := range []string{
				fmt.Sprintf("node %s character special file c3:%x\n", tt.node, tt.minor),
				"node /dev/nvidiactl character special file c3:ff\n",
				"node /dev/nvidia-uvm character special file ee:0\n",
				"node /dev/nvidia-uvm-tools character special file ee:1\n",
				"libcuda=fake libcuda.so.580.159.04\n",
				"libcuda.so.1=libcuda.so.580.159.04 fake libcuda.so.580.159.04\n",
				"libcuda.so=libcuda.so.1\n",
				"gbm=../libnvidia-allocator.so.1\n",
				"firmware=fake gsp_ga10x.bin\n",
				"smi=GPU 0: fake H200\n",
				"ld=/usr/local/nvidia/lib64\n",
				":/usr/local/nvidia/bin\n", // PATH ends with the driver's bin folder
				// CUDA numbers the sandbox's GPUs from 0, whatever their index on the host.
				" cuda=0 libcudadir=/usr/local/nvidia/lib64\n",
				"graft read-only\n",
			} {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q", w)
				}
			}
			if strings.Contains(out, "[tamarack] device node") {
				t.Error("a note says a device node is missing, though CDI handed it over")
			}
			if strings.Contains(out, tt.notIt) {
				t.Errorf("the sandbox sees %s, which it was not given", tt.notIt)
			}
			if tt.image && !strings.Contains(out, "local=bin nvidia \n") {
				t.Errorf("/usr/local lost the image's own entries or lacks nvidia")
			}
			for line := range strings.Lines(out) {
				if v, ok := strings.CutPrefix(strings.TrimSpace(line), "libopts="); ok {
					opts := strings.Split(v, ",")
					if !slices.Contains(opts, "ro") || !slices.Contains(opts, "nosuid") || !slices.Contains(opts, "nodev") {
						t.Errorf("libcuda is mounted %s, want ro,nosuid,nodev", v)
					}
				}
			}

			if !tt.image {
				// The terminal's login shell resets PATH (/etc/profile); the graft's profile.d script
				// puts the driver's tools back.
				term, err := b.Terminal(context.Background(), id, []string{"/bin/bash", "-l", "-c", "command -v nvidia-smi; nvidia-smi"})
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(term)
				term.Close()
				if !strings.Contains(string(got), "/usr/local/nvidia/bin/nvidia-smi\r\nGPU 0: fake H200") {
					t.Errorf("a login shell in the terminal says %q, want nvidia-smi found on its PATH", got)
				}
			}

			// The spec runc ran: no hook, no device of the spec's own list, and a devices cgroup that
			// allows exactly the sandbox's nodes (beyond runc's standard ones).
			var spec specs.Spec
			if err := readJSON(filepath.Join(b.dir(id), fileConfig), &spec); err != nil {
				t.Fatal(err)
			}
			if spec.Hooks != nil {
				t.Errorf("the runtime spec has hooks: %+v", spec.Hooks)
			}
			if spec.Annotations[cdi.AnnotationDevices] != tt.device {
				t.Errorf("CDI devices %q, want %q", spec.Annotations[cdi.AnnotationDevices], tt.device)
			}
			var allowed []string
			for _, r := range spec.Linux.Resources.Devices {
				if r.Allow {
					allowed = append(allowed, fmt.Sprintf("%s %d:%d %s", r.Type, *r.Major, *r.Minor, r.Access))
				}
			}
			wantAllowed := []string{"c 238:0 rw", "c 238:1 rw", "c 195:255 rw", fmt.Sprintf("c 195:%d rw", tt.minor)}
			if !slices.Equal(allowed, wantAllowed) || spec.Linux.Resources.Devices[0].Allow {
				t.Errorf("devices cgroup allows %v (first rule %+v), want deny-all then %v", allowed, spec.Linux.Resources.Devices[0], wantAllowed)
			}
			if list, ok := devicesList(t, id); ok {
				// runc's standard nodes, then exactly ours.
				for _, w := range wantAllowed {
					if !strings.Contains(list, w+"\n") {
						t.Errorf("devices.list lacks %q:\n%s", w, list)
					}
				}
				if strings.Contains(list, fmt.Sprintf("c 195:%d ", 1-tt.minor)) || strings.Contains(list, "a *:* ") {
					t.Errorf("devices.list allows more than the sandbox's GPU:\n%s", list)
				}
			}

			var l launch
			if err := readJSON(filepath.Join(b.dir(id), fileLaunch), &l); err != nil {
				t.Fatal(err)
			}
			if l.EditDir == "" || !exists(l.EditDir) {
				t.Fatalf("edit directory %q missing while the sandbox runs", l.EditDir)
			}
			if _, err := b.Stop(context.Background(), id, 0); err != nil {
				t.Fatal(err)
			}
			if exists(l.EditDir) {
				t.Errorf("edit directory %s survived Stop", l.EditDir)
			}
			if _, err := os.Lstat("/usr/local/nvidia"); err == nil {
				t.Error("the host's /usr/local/nvidia exists now")
			}
			if _, err := os.Lstat(filepath.Join(b.opts.HostDir, "hostroot/usr/local")); err == nil {
				t.Error("the host view's skeleton got a usr/local")
			}
			if tt.image {
				if after := snapshot(t, root); !slices.Equal(before, after) {
					t.Errorf("the image changed:\nbefore %v\nafter  %v", before, after)
				}
			}
		})
	}
}

// snapshot lists every entry of an image root with its type, mode, size and link target.
func snapshot(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		target, _ := os.Readlink(p)
		out = append(out, fmt.Sprintf("%s %v %d %s", strings.TrimPrefix(p, root), fi.Mode(), fi.Size(), target))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// devicesList reads the kernel's devices allow-list of sandbox id on cgroup v1 (v2 has an eBPF program
// instead, with nothing to read).
func devicesList(t *testing.T, id string) (string, bool) {
	t.Helper()
	mounts, err := v1Mounts()
	if err != nil {
		return "", false
	}
	m, ok := mounts["devices"]
	self, _ := os.ReadFile("/proc/self/cgroup")
	own, ok2 := ownCgroup(self, "devices")
	if !ok || !ok2 {
		return "", false
	}
	rel, err := filepath.Rel(m.root, own)
	if err != nil || strings.HasPrefix(rel, "..") {
		rel = "."
	}
	data, err := os.ReadFile(filepath.Join(m.dir, rel, runtimeParent(RuntimeRunc), id, "devices.list"))
	if err != nil {
		t.Fatalf("devices.list: %v", err)
	}
	return string(data), true
}
