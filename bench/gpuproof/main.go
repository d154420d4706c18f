// Command gpuproof proves, through a running `tamarack serve` seeded with the demo data, that a sandbox gets
// a real GPU: programme staff enrol this host's GPUs (a local pool whose node is discovered from nvidia-smi
// and the host's CDI spec), the demo vendor lists them, the demo SME launches a 1-GPU sandbox and runs
// `nvidia-smi -L` and a matrix multiply (python3 with torch, when the host's /usr has it) in its terminal;
// the same multiply runs outside on the same GPU, and both throughputs are printed side by side.
//
// bench/gpu-proof.sh builds and starts everything (and fails clearly on a host without a GPU): run that.
//
//	go run ./bench/gpuproof -url http://127.0.0.1:18080
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/fasthttp/websocket"
)

// matmul is the multiply, run inside and outside: fp16 n×n by n×n on the first visible GPU, after a warm-up.
const matmul = `import sys, time
try:
    import torch
except Exception as e:
    print("MATMUL-SKIP torch is not importable here (%s)" % e); sys.exit(0)
if not torch.cuda.is_available():
    print("MATMUL-FAIL torch sees no CUDA device"); sys.exit(1)
n, iters = int(sys.argv[1]), int(sys.argv[2])
a = torch.randn(n, n, device="cuda", dtype=torch.float16); b = torch.randn_like(a)
for _ in range(3): a @ b
torch.cuda.synchronize(); t = time.perf_counter()
for _ in range(iters): a @ b
torch.cuda.synchronize(); dt = time.perf_counter() - t
print("MATMUL %.1f TFLOP/s on %s (fp16 %dx%d, %d iterations, %.3f s)" % (2.0 * n**3 * iters / dt / 1e12, torch.cuda.get_device_name(0), n, n, iters, dt))
`

func main() {
	base := flag.String("url", "http://127.0.0.1:18080", "the running tamarack serve")
	password := flag.String("password", "tamarack-demo-2026", "the demo accounts' password (tamarack seed --demo)")
	n := flag.Int("n", 8192, "matrix size of the multiply")
	iters := flag.Int("iters", 50, "multiplies timed")
	python := flag.String("python", "python3", "python with torch, for the multiply outside the sandbox")
	img := flag.String("image", "", "a CUDA image with python3 and torch, pinned by digest (registry/repository@sha256:…), that the testbed can pull: "+
		"the sandbox runs it as a model listing's try-it image; empty: the built-in python image, which has no torch (the multiply is skipped)")
	flag.Parse()
	if err := run(strings.TrimSuffix(*base, "/"), *password, *n, *iters, *python, *img); err != nil {
		fmt.Fprintln(os.Stderr, "gpuproof:", err)
		os.Exit(1)
	}
}

type client struct{ base string }

// call sends a JSON request and returns the status and the decoded answer.
func (c client) call(method, path, token string, body any) (int, map[string]any, error) {
	var r io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, c.base+path, r)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	out := map[string]any{}
	_ = json.Unmarshal(data, &out)
	if out["raw"] == nil {
		out["raw"] = string(data)
	}
	return resp.StatusCode, out, nil
}

// must calls until the answer has status want (services learn of each other by events, so the first
// answers may be "not yet") or a minute has passed.
func (c client) must(want int, method, path, token string, body any) (map[string]any, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		code, out, err := c.call(method, path, token, body)
		if err == nil && code == want {
			return out, nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", method, path, err)
			}
			return nil, fmt.Errorf("%s %s: %d, want %d: %s", method, path, code, want, out["raw"])
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// str digs a string out of decoded JSON by keys and array indices.
func str(v any, path ...string) string {
	for _, p := range path {
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i >= len(x) {
				return ""
			}
			v = x[i]
		default:
			return ""
		}
	}
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	return ""
}

func run(base, password string, n, iters int, python, img string) error {
	c := client{base: base}
	login := func(email string) (string, error) {
		out, err := c.must(200, "POST", "/api/v1/identity/login", "", map[string]any{"email": email, "password": password})
		if err != nil {
			return "", fmt.Errorf("sign in as %s (did tamarack seed --demo run?): %w", email, err)
		}
		return str(out, "access_token"), nil
	}
	staff, err := login("staff@tamarack.demo")
	if err != nil {
		return err
	}
	vendor, err := login("vendor@tamarack.demo")
	if err != nil {
		return err
	}
	sme, err := login("sme@tamarack.demo")
	if err != nil {
		return err
	}
	me, err := c.must(200, "GET", "/api/v1/identity/me", vendor, nil)
	if err != nil {
		return err
	}
	vendorOrg := str(me, "active_organization_id")

	// Staff enrol this host's GPUs: a local pool, and a node discovered from nvidia-smi and the CDI spec.
	stamp := time.Now().UTC().Format("20060102-150405")
	host, _ := os.Hostname()
	pool, err := c.must(201, "POST", "/api/v1/testbed/pools", staff, map[string]any{"name": "GPU proof " + stamp,
		"region": "local", "backend": "local", "vendor_org_id": vendorOrg})
	if err != nil {
		return err
	}
	poolID := str(pool, "id")
	node, err := c.must(201, "POST", "/api/v1/testbed/pools/"+poolID+"/nodes", staff, map[string]any{"name": host,
		"cpu_millis": runtime.NumCPU() * 1000, "memory_bytes": int64(64) << 30, "discover": true})
	if err != nil {
		return fmt.Errorf("enrol this host's GPUs: %w", err)
	}
	model, memMiB := str(node, "devices", "0", "gpu_model"), str(node, "devices", "0", "memory_mib")
	fmt.Printf("enrolled %s: %d GPU(s) discovered, first %s (%s MiB)\n", host, len(node["devices"].([]any)), model, memMiB)
	if p := str(pool, "backend_problem"); p != "" {
		return fmt.Errorf("the local backend cannot run here: %s", p)
	}

	// The vendor lists them; staff approve.
	vram, _ := strconv.Atoi(memMiB)
	listing, err := c.must(201, "POST", "/api/v1/marketplace/listings", vendor, map[string]any{"kind": "compute",
		"slug": "gpu-proof-" + stamp, "title": "GPU proof " + stamp, "summary": "This host's GPUs", "card_markdown": "GPU proof.",
		"license": map[string]any{"spdx": "custom", "url": "https://tamarack.example/terms"}, "residency": "CA",
		"compute": map[string]any{"pool_id": poolID, "gpu_model": model, "vram_gb": max(1, vram/1024), "devices_per_node": len(node["devices"].([]any)),
			"region": "local", "min_duration_minutes": 1, "max_duration_minutes": 60},
		"plans": []map[string]any{{"name": "Per GPU-hour", "kind": "per_gpu_hour", "price_micro": 1_000_000}}})
	if err != nil {
		return err
	}
	listingID := str(listing, "id")
	if _, err := c.must(200, "POST", "/api/v1/marketplace/listings/"+listingID+"/submit", vendor, nil); err != nil {
		return err
	}
	if _, err := c.must(200, "POST", "/api/v1/marketplace/reviews/"+str(listing, "pending_version", "id")+"/decision", staff,
		map[string]any{"decision": "approve"}); err != nil {
		return err
	}

	// The SME launches a 1-GPU sandbox and waits for it to run: from the built-in python image (the
	// pytorch template), or from the CUDA image, which staff allow on the pool and a vendor offers as a
	// model's try-it image, as any image reaches a sandbox.
	launch := map[string]any{"listing_id": listingID, "gpu_model": model, "gpu_count": 1, "template": "pytorch", "duration_minutes": 15}
	if img != "" {
		if launch["image_listing_id"], err = offerImage(c, staff, vendor, sme, poolID, stamp, img); err != nil {
			return err
		}
		delete(launch, "template")
		fmt.Printf("image %s: allowed on the pool, offered with a model listing\n", img)
	}
	sb, err := c.must(202, "POST", "/api/v1/testbed/sandboxes", sme, launch)
	if err != nil {
		return err
	}
	sbID := str(sb, "id")
	// Stopped and waited for: serve is killed once this ends, and a sandbox would outlive it.
	defer func() {
		_, _, _ = c.call("POST", "/api/v1/testbed/sandboxes/"+sbID+"/stop", sme, nil)
		for end := time.Now().Add(time.Minute); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
			if _, v, err := c.call("GET", "/api/v1/testbed/sandboxes/"+sbID, sme, nil); err == nil && (str(v, "state") == "stopped" || str(v, "state") == "failed") {
				return
			}
		}
		fmt.Fprintf(os.Stderr, "gpuproof: sandbox %s did not stop within a minute\n", sbID)
	}()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		_, sb, err = c.call("GET", "/api/v1/testbed/sandboxes/"+sbID, sme, nil)
		if err != nil {
			return err
		}
		if s := str(sb, "state"); s == "running" {
			break
		} else if s == "failed" || s == "stopped" || time.Now().After(deadline) {
			return fmt.Errorf("sandbox %s is %s: %s %s", sbID, s, str(sb, "stop_reason"), str(sb, "message"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	uuid := str(sb, "devices", "0", "uuid")
	fmt.Printf("sandbox %s running on GPU %s (%s)\n", sbID, str(sb, "devices", "0", "index"), uuid)

	inside, err := terminal(c, sme, sbID, n, iters)
	if err != nil {
		return err
	}
	var smi, mm []string
	for line := range strings.Lines(inside) {
		// A terminal's line: what follows its last carriage return, without escape sequences (bash
		// turns bracketed paste off before each command's output).
		line = strings.TrimRight(line, "\r\n")
		line = ansi.ReplaceAllString(line[strings.LastIndexByte(line, '\r')+1:], "")
		if v, ok := strings.CutPrefix(line, "SMI "); ok {
			smi = append(smi, v)
		}
		if strings.HasPrefix(line, "MATMUL") {
			mm = append(mm, line)
		}
	}
	fmt.Println("inside the sandbox:")
	fmt.Println("  nvidia-smi -L:", strings.Join(smi, "\n                 "))
	fmt.Println("  " + strings.Join(mm, "\n  "))

	// The same multiply outside, on the same GPU.
	outside := "MATMUL-SKIP " + python + " not found"
	if _, err := exec.LookPath(python); err == nil {
		cmd := exec.Command(python, "-c", matmul, strconv.Itoa(n), strconv.Itoa(iters))
		cmd.Env = append(os.Environ(), "CUDA_VISIBLE_DEVICES="+uuid, "CUDA_DEVICE_ORDER=PCI_BUS_ID")
		out, err := cmd.CombinedOutput()
		outside = strings.TrimSpace(string(out))
		if err != nil {
			outside += fmt.Sprintf(" (%v)", err)
		}
	}
	fmt.Println("outside, same GPU:")
	fmt.Println("  " + outside)

	if len(smi) == 0 || !strings.HasPrefix(smi[0], "GPU 0:") {
		return fmt.Errorf("nvidia-smi -L inside the sandbox did not list its GPU; the terminal said:\n%s", inside)
	}
	if len(mm) == 0 || strings.HasPrefix(mm[0], "MATMUL-FAIL") {
		return errors.New("the matrix multiply failed inside the sandbox")
	}
	if img != "" && strings.HasPrefix(mm[0], "MATMUL-SKIP") {
		return fmt.Errorf("the image %s cannot run the multiply: %s", img, mm[0])
	}
	if t1, t2 := tflops(mm[0]), tflops(outside); t1 > 0 && t2 > 0 {
		fmt.Printf("throughput inside / outside: %.1f / %.1f TFLOP/s (%.1f %%)\n", t1, t2, 100*t1/t2)
	}
	return nil
}

// offerImage has staff allow img on the pool, the vendor list a model whose try-it image it is (approved by
// staff) and the SME order its free plan: what any image goes through before an SME's sandbox runs it. It
// returns the model listing's ID. The try-it command keeps the sandbox running for the terminal whatever
// the image's own.
func offerImage(c client, staff, vendor, sme, poolID, stamp, img string) (string, error) {
	if _, err := c.must(200, "PATCH", "/api/v1/testbed/pools/"+poolID, staff, map[string]any{"settings": map[string]string{"images.allow": img}}); err != nil {
		return "", fmt.Errorf("allow the image on the pool: %w", err)
	}
	model, err := c.must(201, "POST", "/api/v1/marketplace/listings", vendor, map[string]any{"kind": "model",
		"slug": "gpu-proof-model-" + stamp, "title": "GPU proof image " + stamp, "summary": "A CUDA image with PyTorch",
		"card_markdown": "The GPU proof's image.", "license": map[string]any{"spdx": "apache-2.0"}, "residency": "CA",
		"visibility": "public", "model": map[string]any{"framework": "pytorch", "task": "other"},
		"plans":  []map[string]any{{"name": "Free", "kind": "free", "price_micro": 0}},
		"try_it": map[string]any{"image": img, "command": []string{"sleep", "infinity"}}})
	if err != nil {
		return "", fmt.Errorf("list the image: %w", err)
	}
	id := str(model, "id")
	if _, err := c.must(200, "POST", "/api/v1/marketplace/listings/"+id+"/submit", vendor, nil); err != nil {
		return "", err
	}
	if _, err := c.must(200, "POST", "/api/v1/marketplace/reviews/"+str(model, "pending_version", "id")+"/decision", staff,
		map[string]any{"decision": "approve"}); err != nil {
		return "", err
	}
	listing, err := c.must(200, "GET", "/api/v1/marketplace/listings/"+id, sme, nil)
	if err != nil {
		return "", err
	}
	if _, err := c.must(201, "POST", "/api/v1/marketplace/orders", sme, map[string]any{"listing_id": id, "plan_id": str(listing, "published_version", "plans", "0", "id")}); err != nil {
		return "", fmt.Errorf("the SME gets access to the image's listing: %w", err)
	}
	return id, nil
}

// ansi matches a terminal's escape sequences (CSI).
var ansi = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

func tflops(line string) float64 {
	f := strings.Fields(line)
	if len(f) < 2 || f[0] != "MATMUL" {
		return 0
	}
	v, _ := strconv.ParseFloat(f[1], 64)
	return v
}

// terminal runs nvidia-smi -L and the multiply in the sandbox's terminal (a WebSocket, as the browser's)
// and returns what it printed.
func terminal(c client, token, id string, n, iters int) (string, error) {
	out, err := c.must(201, "POST", "/api/v1/testbed/sandboxes/"+id+"/token", token, nil)
	if err != nil {
		return "", err
	}
	u, err := url.Parse(c.base)
	if err != nil {
		return "", err
	}
	u.Scheme = strings.Replace(u.Scheme, "http", "ws", 1)
	u.Path = "/api/v1/testbed/sandboxes/" + id + "/terminal"
	u.RawQuery = "token=" + url.QueryEscape(str(out, "token"))
	conn, _, err := websocket.DefaultDialer.Dial(u.String(), nil)
	if err != nil {
		return "", fmt.Errorf("terminal: %w", err)
	}
	defer conn.Close()
	prog := base64.StdEncoding.EncodeToString([]byte(matmul))
	// The end marker is computed, so the echo of the typed line never matches it.
	script := fmt.Sprintf("nvidia-smi -L 2>&1 | sed 's/^/SMI /'; echo %s | base64 -d > /tmp/matmul.py; "+
		"python3 /tmp/matmul.py %d %d 2>&1 | grep MATMUL; echo GPU-PROOF-$((6*7)); exit\n", prog, n, iters)
	if err := conn.WriteMessage(websocket.BinaryMessage, []byte(script)); err != nil {
		return "", err
	}
	var got strings.Builder
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Minute))
	for !strings.Contains(got.String(), "GPU-PROOF-42") {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			return got.String(), fmt.Errorf("terminal: %w (so far: %q)", err, got.String())
		}
		got.Write(msg)
	}
	return got.String(), nil
}
