package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	kube "github.com/tamarack-ai/tamarack/testbed/backend/kubernetes"
)

// EnvKube names the admin kubeconfig of the test control plane (infra/kube/start.sh prints it).
const EnvKube = "TAMARACK_TEST_KUBE"

// The fake GPU nodes infra/kube/start.sh registers, and their product label.
var kubeNodes = []string{"tamarack-gpu-0", "tamarack-gpu-1"}

const kubeProduct = "NVIDIA-H100-80GB-HBM3"

// TestKubernetesJourney: an SME launches a sandbox on a Kubernetes pool, through `tamarack serve` and a site
// agent with the kubernetes backend, on the test control plane (etcd, kube-apiserver, the scheduler and kwok's
// fake GPU nodes): the Pod is scheduled on a GPU node with its GPU limit and product selector and runs (kwok
// runs no container: what runs inside is the local and Slurm backends' tests' to prove); the agent is killed
// and restarted and the sandbox is still running; the stop deletes the Pod; the usage charged is the Pod's
// run time as the API server recorded it; the ledger verifies.
func TestKubernetesJourney(t *testing.T) {
	path := os.Getenv(EnvKube)
	if path == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not set: CI tests the Kubernetes backend against a real API server (infra/kube/start.sh)", EnvKube)
		}
		t.Skipf(`set %s to test against a real API server: eval "$(infra/kube/start.sh)" starts one and prints it`, EnvKube)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	ns := "tt-journey-" + hex.EncodeToString(b[:])
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })

	site, agentData := newAgentSite(ctx, t, `{"name":"GPU cluster","region":"here","backend":"kubernetes","vendor_org_id":"org-vendor","settings":{"kubernetes.namespace":"`+ns+`"}}`)
	site.agent = &agentProc{t: t, data: agentData, args: []string{"--backend", "kubernetes", "--kube-config", path,
		"--kube-namespace", ns, "--kube-gpu-models", kubeProduct + "=h100-80gb"}}
	site.agent.start()
	t.Cleanup(site.agent.kill)
	site.waitAgent("h100-80gb", 8, kubeNodes...)
	site.publishListing(ctx, "h100-80gb")

	id, _ := site.launch()
	pod, err := cs.CoreV1().Pods(ns).Get(ctx, id, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gpu := pod.Spec.Containers[0].Resources.Limits[kube.ResourceGPU]
	if pod.Status.Phase != corev1.PodRunning || gpu.Value() != 1 || pod.Spec.NodeSelector[kube.LabelGPUProduct] != kubeProduct || pod.Spec.NodeName == "" {
		t.Fatalf("pod of %s: phase %s on %q, GPU limit %s, selector %v", id, pod.Status.Phase, pod.Spec.NodeName, gpu.String(), pod.Spec.NodeSelector)
	}

	// Killed and restarted, the agent finds its sandbox running again from the API server.
	site.agent.kill()
	site.agent.start()
	site.waitAgent("h100-80gb", 8, kubeNodes...)
	site.s.waitState(site.sme, id, "running")

	if code := site.s.do("POST", "/sandboxes/"+id+"/stop", site.sme, "", nil); code != 202 {
		t.Fatalf("stop: %d", code)
	}
	final := site.s.waitState(site.sme, id, "stopped")
	if _, err := cs.CoreV1().Pods(ns).Get(ctx, id, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("pod of a stopped sandbox: %v, want it deleted", err)
	}
	if !final.StartedAt.Equal(podStarted(pod)) {
		t.Errorf("sandbox started %v, its pod's container %v", final.StartedAt, podStarted(pod))
	}
	usage := collectUsage(ctx, t, site.bus, id)
	checkUsage(t, usage.waitFinal(t), *final.StartedAt, *final.EndedAt)
	site.verifyLedger()
}

// podStarted is when the API server says the pod's container started running.
func podStarted(p *corev1.Pod) time.Time {
	for _, c := range p.Status.ContainerStatuses {
		if c.State.Running != nil {
			return c.State.Running.StartedAt.Time
		}
	}
	return time.Time{}
}
