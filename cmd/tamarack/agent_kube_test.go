package main

import (
	"os"
	"path/filepath"
	"testing"
)

// A kubeconfig that names a cluster (nothing is called: the flags are checked before anything is opened).
const testKubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://k8s.example:6443"}
users:
- name: u
  user: {token: "t"}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
`

// `agent run --backend kubernetes` checks its flags, all of them at once, before it opens anything.
func TestAgentRunKubeFlags(t *testing.T) {
	data := t.TempDir()
	kc := filepath.Join(data, "kubeconfig")
	if err := os.WriteFile(kc, []byte(testKubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "") // not in a Pod, whatever runs the test
	good := []string{"run", "--data", data, "--backend", "kubernetes", "--kube-config", kc}
	tests := []agentFlagCase{
		{name: "good flags", args: good, wants: []string{"is not enrolled"}},
		{name: "all of them", args: append(good, "--kube-namespace", "gpu-pool", "--kube-runtime-class", "gvisor",
			"--kube-gpu-models", "NVIDIA-H100-NVL=h100-80gb, NVIDIA-L40=l40s-48gb"), wants: []string{"is not enrolled"}},
		{name: "from the environment", args: []string{"run", "--data", data, "--backend", "kubernetes"},
			env:   map[string]string{"TAMARACK_AGENT_KUBE_CONFIG": kc, "TAMARACK_AGENT_KUBE_NAMESPACE": "gpu", "TAMARACK_AGENT_KUBE_RUNTIME_CLASS": "kata.qemu"},
			wants: []string{"is not enrolled"}},
		{name: "not in a cluster", args: []string{"run", "--data", data, "--backend", "kubernetes"}, wants: []string{"--kube-config is empty"}},
		{name: "no such kubeconfig", args: append(good, "--kube-config", filepath.Join(data, "none")), wants: []string{"--kube-config"}},
		{name: "bad namespace", args: append(good, "--kube-namespace", "GPU_pool"), wants: []string{"--kube-namespace"}},
		{name: "bad class", args: append(good, "--kube-runtime-class", "g visor"), wants: []string{"--kube-runtime-class"}},
		{name: "bad models", args: append(good, "--kube-gpu-models", "NVIDIA-H100:h100-80gb"), wants: []string{"--kube-gpu-models", "PRODUCT=MODEL"}},
		{name: "unknown model", args: append(good, "--kube-gpu-models", "NVIDIA-H100=h100"), wants: []string{"unknown GPU model"}},
		{name: "product twice", args: append(good, "--kube-gpu-models", "X=h100-80gb,X=a100-80gb"), wants: []string{"mapped twice"}},
		{name: "declared gpus", args: append(good, "--gpus", "h100-80gb:8"), wants: []string{"--gpus"}},
		{name: "every problem at once", args: append(good, "--kube-namespace", "", "--kube-gpu-models", "x", "--node", "n1"),
			wants: []string{"--kube-namespace", "--kube-gpu-models", "--node"}},
	}
	refusedAgentFlags(t, tests)
}

// The options the flags make: the kubeconfig's server, the built-in product map with the flag's entries over it.
func TestAgentKubeOptions(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, []byte(testKubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	ptr := func(s string) *string { return &s }
	opts, err := kubeFlags{config: &kc, namespace: ptr("gpu"), runtimeClass: ptr("gvisor"), models: ptr("NVIDIA-L40=l40s-48gb")}.options(nil)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Config.Host != "https://k8s.example:6443" || opts.Namespace != "gpu" || opts.RuntimeClass != "gvisor" ||
		opts.Models["NVIDIA-L40"] != "l40s-48gb" || opts.Models["NVIDIA-H100-80GB-HBM3"] != "h100-80gb" {
		t.Errorf("options %+v", opts)
	}
}
