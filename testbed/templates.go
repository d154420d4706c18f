package testbed

import "sort"

// Template is a named sandbox environment: what runs, with which environment, which ports it serves, its
// default limits and how the testbed decides it is idle.
type Template struct {
	Name        string
	Title       string
	Description string
	Command     []string
	Env         map[string]string
	Ports       []int
	Network     bool
	// Default limits per sandbox; CPU and memory scale with the GPU count (per GPU values).
	CPUMillisPerGPU   int64
	MemoryBytesPerGPU int64
	Pids              int64
	// IdleSignal names what counts as activity: "access" = terminal input, proxied HTTP requests or a log
	// stream opened by the owner. IdleMinutes without activity stops the sandbox (reason idle); 0 never.
	IdleSignal  string
	IdleMinutes int
	// LogBytes caps the output the backend keeps for each sandbox: its newest LogBytes at most, never
	// less than the newest half of that (see testbed/backend/logfile); older output is dropped. Notes
	// must say so.
	LogBytes int64
	// Notes are shown to users as is: honest statements about what the template really provides.
	Notes string
	// Image is the root filesystem: a built-in image's name ("shell", "python": built by infra/images/build.sh,
	// pushed by `tamarack seed`, resolved by image.Provider against the registry store's builtin.json) or a
	// reference pinned by digest (registry/repository@sha256:…) that the pool allows.
	Image string
}

const (
	mib = int64(1) << 20
	gib = int64(1) << 30
)

// imageNote states what of a sandbox's file system is writable.
const imageNote = "The image's files are read-only; your home (/home/sandbox) and /tmp are writable."

// logNote states a template's log cap of 16 MiB to its users.
const logNote = "Output log: the newest 16 MiB at most are kept (never less than the newest 8 MiB); older output is dropped."

// Templates are the built-in environments. Each runs from a built-in image (infra/images/build.sh, seeded by
// `tamarack seed`): "shell" from the shell image (Debian bookworm's Essential packages), "pytorch" and
// "jupyterlab" from the python image (the same plus python3 3.11). Neither image has PyTorch or JupyterLab:
// the notes say so, and jupyterlab's command falls back to python3's http.server.
var templates = map[string]Template{
	"shell": {
		Name: "shell", Title: "Shell", Description: "A bare shell on Debian 12 (bookworm); open the terminal to work.",
		Command:         []string{"/bin/sh", "-c", "echo \"sandbox $TAMARACK_SANDBOX_ID ready\"; exec sleep infinity"},
		Env:             map[string]string{"TERM": "xterm-256color"},
		CPUMillisPerGPU: 2000, MemoryBytesPerGPU: 4 * gib, Pids: 512,
		IdleSignal: "access", IdleMinutes: 30,
		LogBytes: 16 * mib, Image: "shell",
		Notes: "Runs the built-in shell image: Debian 12 (bookworm), its essential packages only (bash, coreutils, " +
			"util-linux, …), no package manager. " + imageNote + " " + logNote,
	},
	"pytorch": {
		Name: "pytorch", Title: "Python", Description: "python3 (3.11) and its standard library on Debian 12; PyTorch is not included.",
		Command: []string{"/bin/sh", "-c", "python3 -c 'import sys; print(\"python\", sys.version.split()[0])' 2>&1; " +
			"python3 -c 'import torch; print(\"torch\", torch.__version__, \"cuda\", torch.cuda.is_available())' 2>/dev/null || " +
			"echo 'no PyTorch in this image: python3 and its standard library only'; exec sleep infinity"},
		Env:             map[string]string{"PYTHONUNBUFFERED": "1", "TERM": "xterm-256color"},
		CPUMillisPerGPU: 4000, MemoryBytesPerGPU: 16 * gib, Pids: 1024,
		IdleSignal: "access", IdleMinutes: 60,
		LogBytes: 16 * mib,
		Notes: "Runs the built-in python image: Debian 12 (bookworm) with python3 3.11 and its standard library. " +
			"It has no PyTorch, no pip and no other Python packages (the template keeps its name \"pytorch\" for " +
			"existing clients; a PyTorch environment needs an image with it, pinned by digest and allowed on the pool). " +
			imageNote + " " + logNote,
		Image: "python",
	},
	"jupyterlab": {
		Name: "jupyterlab", Title: "JupyterLab", Description: "Port 8888 through the proxy: python3's http.server stands in, as the built-in image has no JupyterLab.",
		Command: []string{"/bin/sh", "-c", "if command -v jupyter-lab >/dev/null 2>&1; then " +
			"exec jupyter-lab --ip=127.0.0.1 --port=8888 --no-browser --ServerApp.token=''; " +
			"else echo 'jupyter-lab is not in this image: serving the home directory with python3 -m http.server instead'; " +
			"exec python3 -m http.server 8888 --bind 127.0.0.1; fi"},
		Env:             map[string]string{"PYTHONUNBUFFERED": "1", "TERM": "xterm-256color"},
		Ports:           []int{8888},
		CPUMillisPerGPU: 4000, MemoryBytesPerGPU: 16 * gib, Pids: 1024,
		IdleSignal: "access", IdleMinutes: 60,
		LogBytes: 16 * mib,
		Notes: "Runs the built-in python image, which does not include JupyterLab: python3 -m http.server serves the home " +
			"directory on port 8888 instead (JupyterLab starts there only from an image that has it). " + imageNote + " " + logNote,
		Image: "python",
	},
}

// Templates lists the built-in templates by name.
func Templates() []Template {
	out := make([]Template, 0, len(templates))
	for _, t := range templates {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// GPU models the testbed knows, with their memory.
var gpuModels = map[string]int64{
	"h100-80gb": 80 * 1024, "h200-141gb": 141 * 1024, "a100-80gb": 80 * 1024, "a100-40gb": 40 * 1024,
	"l40s-48gb": 48 * 1024, "l4-24gb": 24 * 1024, "rtx6000ada-48gb": 48 * 1024, "mi300x-192gb": 192 * 1024,
}

// GPUModels lists the known GPU model names, sorted.
func GPUModels() []string {
	out := make([]string, 0, len(gpuModels))
	for m := range gpuModels {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// KnownGPUModel reports whether m is a known model name.
func KnownGPUModel(m string) bool { _, ok := gpuModels[m]; return ok }
