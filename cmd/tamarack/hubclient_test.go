package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
)

// TestHubClient: the real @huggingface/hub client (bench/hfclient, npm), which Tamarack did not write,
// against `tamarack serve` listening on a port: it lists and downloads a model's and a dataset's files with
// an SME's API token (hf_-prefixed, as that client demands), resumes with a Range, and gets the Hub's errors
// for a gated repository, a restricted one, a missing file and an anonymous download, on SQLite and, when
// configured, Postgres. Node.js is required:
// without it the test fails, it does not skip. node_modules is installed with `npm ci` when missing.
func TestHubClient(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node not found: the Hub client test needs Node.js 20+ and npm (bench/hfclient)")
	}
	dir, err := filepath.Abs(filepath.Join("..", "..", "bench", "hfclient"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@huggingface", "hub")); err != nil {
		npm := exec.Command("npm", "ci", "--no-audit", "--no-fund")
		npm.Dir = dir
		if out, err := npm.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in bench/hfclient: %v\n%s", err, out)
		}
	}

	for _, d := range dbtest.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			args := []string{"--nats-listen", "127.0.0.1:0"}
			if d == sqldb.Postgres {
				args = append(args, "--db", dbtest.DSN(t, d))
			}
			runHubClient(t, node, dir, args)
		})
	}
}

// runHubClient serves the platform on a port, publishes the repositories and runs check.mjs against them.
func runHubClient(t *testing.T, node, dir string, args []string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := newTestServer(t, append(args, "--addr", addr)...)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- s.run(ctx, io.Discard) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	base := "http://" + addr
	j := journey{t: t, s: s}
	j.until("the server listens", func() bool {
		res, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})

	const I, M = "/api/v1/identity", "/api/v1/marketplace"
	vendor, vendorOrg := j.signup("vendor@hub.example", "Aurora Models", "vendor")
	sme, smeOrg := j.signup("sme@hub.example", "Maple Robotics", "sme")
	staff := j.newStaff("staff@hub.example")
	j.must(200, "POST", I+"/organizations/"+vendorOrg+"/verify", staff, map[string]any{"verified": true})
	j.must(200, "POST", I+"/organizations/"+smeOrg+"/verify", staff, map[string]any{"verified": true})

	weights := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	csv := []byte("day,height\n1,2.5\n2,3.1\n")
	publish := func(body map[string]any, files map[string][]byte) (id, plan string) {
		t.Helper()
		l := j.eventually(201, "POST", M+"/listings", vendor, body)
		id = l.str("id")
		for name, b := range files {
			j.must(201, "PUT", M+"/listings/"+id+"/versions/1/artifacts/"+name, vendor, b, "Content-Type", "application/octet-stream")
		}
		j.eventually(200, "POST", M+"/listings/"+id+"/submit", vendor, nil)
		j.must(200, "POST", M+"/reviews/"+l.str("pending_version", "id")+"/decision", staff, map[string]any{"decision": "approve"})
		return id, l.str("pending_version", "plans", "0", "id")
	}
	model := func(slug string) map[string]any {
		return map[string]any{"kind": "model", "slug": slug, "title": "Maple 7B", "summary": "A bilingual model",
			"license": map[string]any{"spdx": "Apache-2.0"}, "residency": "CA", "visibility": "public",
			"model": map[string]any{"framework": "pytorch", "task": "text-generation", "parameters": 7000000000},
			"plans": []map[string]any{{"name": "Research", "kind": "free", "price_micro": 0}}}
	}
	modelID, modelPlan := publish(model("maple-7b"), map[string][]byte{"model.safetensors": weights, "config.json": []byte(`{"a":1}`)})
	gated := model("maple-gated")
	gated["gated"] = true
	publish(gated, map[string][]byte{"model.safetensors": weights})
	hidden := model("maple-hidden")
	hidden["visibility"], hidden["visible_to"] = "restricted", []string{vendorOrg}
	publish(hidden, map[string][]byte{"model.safetensors": weights})
	dsID, dsPlan := publish(map[string]any{"kind": "dataset", "slug": "tides", "title": "Tides", "summary": "Tide tables",
		"license": map[string]any{"spdx": "CC-BY-4.0"}, "residency": "CA",
		"dataset": map[string]any{"format": "csv", "size_bytes": len(csv), "rows": 2},
		"plans":   []map[string]any{{"name": "Open", "kind": "free", "price_micro": 0}}}, map[string][]byte{"tides.csv": csv})
	j.must(201, "POST", M+"/orders", sme, map[string]any{"listing_id": modelID, "plan_id": modelPlan})
	j.must(201, "POST", M+"/orders", sme, map[string]any{"listing_id": dsID, "plan_id": dsPlan})
	token := j.must(201, "POST", I+"/tokens", sme, map[string]any{"name": "hf", "scopes": []string{"read"},
		"expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}).str("token")

	script := exec.Command(node, "check.mjs")
	script.Dir = dir
	script.Env = append(os.Environ(), "HUB_URL="+base, "HF_TOKEN=hf_"+token, "MODEL=aurora-models/maple-7b",
		"DATASET=aurora-models/tides", "GATED=aurora-models/maple-gated", "HIDDEN=aurora-models/maple-hidden",
		"MODEL_FILE=model.safetensors", "DATASET_FILE=tides.csv")
	var stderr bytes.Buffer
	script.Stderr = &stderr
	out, err := script.Output()
	if err != nil {
		t.Fatalf("node check.mjs: %v\n%s", err, stderr.String())
	}
	type failure struct {
		OK      bool   `json:"ok"`
		Status  int    `json:"status"`
		Message string `json:"message"`
	}
	type file struct {
		Type   string `json:"type"`
		Path   string `json:"path"`
		Size   int    `json:"size"`
		LFSOid string `json:"lfsOid"`
	}
	var got struct {
		ModelInfo struct {
			Name    string `json:"name"`
			Private bool   `json:"private"`
			Gated   any    `json:"gated"`
		} `json:"modelInfo"`
		ModelFiles []file `json:"modelFiles"`
		ModelFile  struct {
			Size   int    `json:"size"`
			SHA256 string `json:"sha256"`
		} `json:"modelFile"`
		ModelSlice   string `json:"modelSlice"`
		MissingFile  any    `json:"missingFile"`
		DatasetFiles []file `json:"datasetFiles"`
		DatasetFile  struct {
			Size   int    `json:"size"`
			SHA256 string `json:"sha256"`
		} `json:"datasetFile"`
		Gated     failure `json:"gated"`
		Hidden    failure `json:"hidden"`
		Anonymous failure `json:"anonymous"`
	}
	t.Logf("@huggingface/hub saw: %s", out)
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("script output: %v\n%s\n%s", err, out, stderr.String())
	}
	hexSum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	if got.ModelInfo.Name != "aurora-models/maple-7b" || got.ModelInfo.Private || got.ModelInfo.Gated != "auto" {
		t.Errorf("modelInfo: %+v", got.ModelInfo)
	}
	if len(got.ModelFiles) != 2 || got.ModelFiles[1] != (file{"file", "model.safetensors", len(weights), hexSum(weights)}) {
		t.Errorf("listFiles(model): %+v", got.ModelFiles)
	}
	if got.ModelFile.Size != len(weights) || got.ModelFile.SHA256 != hexSum(weights) || got.ModelSlice != "23456" {
		t.Errorf("downloadFile(model): %+v slice %q", got.ModelFile, got.ModelSlice)
	}
	if got.MissingFile != nil {
		t.Errorf("downloadFile(missing) = %v, want null (EntryNotFound)", got.MissingFile)
	}
	if len(got.DatasetFiles) != 1 || got.DatasetFiles[0].Path != "tides.csv" || got.DatasetFile.SHA256 != hexSum(csv) {
		t.Errorf("dataset: %+v %+v", got.DatasetFiles, got.DatasetFile)
	}
	if got.Gated.OK || got.Gated.Status != 403 || !strings.Contains(got.Gated.Message, "restricted") {
		t.Errorf("gated repository: %+v", got.Gated)
	}
	if got.Hidden.OK || got.Hidden.Status != 404 || !strings.Contains(got.Hidden.Message, "Repository Not Found") {
		t.Errorf("restricted repository: %+v", got.Hidden)
	}
	if got.Anonymous.OK || got.Anonymous.Status != 401 {
		t.Errorf("anonymous download: %+v", got.Anonymous)
	}
}
