package kubernetes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	nodev1 "k8s.io/api/node/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"

	"github.com/tamarack-ai/tamarack/services/events"
	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/backend/backendtest"
)

// EnvKube names the admin kubeconfig of the test control plane (infra/kube/start.sh prints it).
const EnvKube = "TAMARACK_TEST_KUBE"

const pollDeadline = 60 * time.Second

// cluster is the test control plane: etcd, kube-apiserver, controller-manager, scheduler, and kwok playing
// the kubelet of fake GPU nodes (Pods go Running, no container ever runs).
type cluster struct {
	cfg *rest.Config
	cs  kubernetes.Interface
}

// connect returns the test control plane, or skips without one (fails in CI).
func connect(t *testing.T) cluster {
	t.Helper()
	path := os.Getenv(EnvKube)
	if path == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not set: CI tests the Kubernetes backend against a real API server (infra/kube/start.sh)", EnvKube)
		}
		t.Skipf(`set %s to test against a real API server: eval "$(infra/kube/start.sh)" starts one and prints it`, EnvKube)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cluster{cfg: cfg, cs: cs}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), pollDeadline)
	t.Cleanup(cancel)
	return c
}

func suffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// namespace makes a namespace of the test's own, deleted when it ends.
func (c cluster) namespace(t *testing.T) string {
	t.Helper()
	ns := "tt-" + suffix()
	if _, err := c.cs.CoreV1().Namespaces().Create(ctx(t), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	return ns
}

// newBackend is a backend in a namespace of its own.
func newBackend(t *testing.T, c cluster, mod ...func(*Options)) *Backend {
	t.Helper()
	opts := Options{Config: c.cfg, Namespace: c.namespace(t), DefaultImage: "registry.example/shell@sha256:" + strings.Repeat("0", 64),
		StartWait: 10 * time.Second}
	for _, m := range mod {
		m(&opts)
	}
	b, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func TestConformance(t *testing.T) {
	c := connect(t)
	backendtest.Run(t, backendtest.Harness{
		New:         func(t *testing.T) backend.Backend { return newBackend(t, c) },
		LongRunning: []string{"sleep", "600"},
		Timeout:     pollDeadline,
	})
}

// started starts s and stops and removes it when the test ends.
func started(t *testing.T, b *Backend, s backend.Spec) backend.Status {
	t.Helper()
	return backendtest.Started(t, b, s, pollDeadline)
}

// waitFor polls Inspect until ok says the status is the one wanted.
func waitFor(t *testing.T, b *Backend, id string, what string, ok func(backend.Status) bool) backend.Status {
	t.Helper()
	deadline := time.Now().Add(pollDeadline)
	for {
		st, err := b.Inspect(ctx(t), id)
		if err != nil {
			t.Fatal(err)
		}
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("sandbox %s: %+v, want %s", id, st, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func running(st backend.Status) bool { return st.State == backend.StateRunning }

// gpuNode adds a kwok-managed node of the test's own with a GPU product of its own, tainted so that only
// GPU Pods land there, removed when the test ends. status=custom leaves its status to the test.
func (c cluster) gpuNode(t *testing.T, product string, gpus int64, custom bool) string {
	t.Helper()
	name := "tt-node-" + suffix()
	ann := map[string]string{"kwok.x-k8s.io/node": "fake"}
	if custom {
		ann["kwok.x-k8s.io/status"] = "custom"
	}
	res := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods: resource.MustParse("110"), corev1.ResourceEphemeralStorage: resource.MustParse("1Ti"),
		ResourceGPU: *resource.NewQuantity(gpus, resource.DecimalSI)}
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann,
		Labels: map[string]string{"kubernetes.io/hostname": name, "type": "kwok", LabelGPUProduct: product}},
		Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: ResourceGPU, Effect: corev1.TaintEffectNoSchedule}}}}
	_, err := c.cs.CoreV1().Nodes().Create(ctx(t), n, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.cs.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	c.editNode(t, name, true, func(n *corev1.Node) {
		n.Status.Capacity, n.Status.Allocatable = res, res
		if custom {
			n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue,
				LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(), Reason: "Test"}}
		}
	})
	return name
}

// editNode changes a node (or its status), again on a conflict with kwok's own updates.
func (c cluster) editNode(t *testing.T, name string, status bool, edit func(*corev1.Node)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := c.cs.CoreV1().Nodes().Get(ctx(t), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		edit(n)
		if status {
			_, err = c.cs.CoreV1().Nodes().UpdateStatus(ctx(t), n, metav1.UpdateOptions{})
		} else {
			_, err = c.cs.CoreV1().Nodes().Update(ctx(t), n, metav1.UpdateOptions{})
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPodSpec starts a GPU sandbox and reads back its Pod and NetworkPolicy from the API server.
func TestPodSpec(t *testing.T) {
	c := connect(t)
	rc := "tt-gvisor-" + suffix()
	if _, err := c.cs.NodeV1().RuntimeClasses().Create(ctx(t), &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: rc}, Handler: "runsc"},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.cs.NodeV1().RuntimeClasses().Delete(context.Background(), rc, metav1.DeleteOptions{}) })
	b := newBackend(t, c, func(o *Options) { o.EphemeralBytes = 5 << 30 })
	img := "registry.example/python@sha256:" + strings.Repeat("a", 64)
	spec := backend.Spec{SandboxID: "gpu-" + suffix(), Command: []string{"sleep", "600"}, Image: img,
		Env:      map[string]string{"A": "1", "HOME": "/root"},
		Devices:  []backend.Device{{Index: 0, Model: "h100-80gb"}, {Index: 1, Model: "h100-80gb"}},
		Limits:   backend.Limits{CPUMillis: 1500, MemoryBytes: 8 << 30},
		Ports:    []int{8888},
		Duration: time.Hour,
		Settings: map[string]string{SettingRuntimeClass: rc, SettingNamespace: b.Namespace()}}
	started(t, b, spec)
	st := waitFor(t, b, spec.SandboxID, "running", running)
	if st.StartedAt.IsZero() || !strings.Contains(st.Message, "tamarack-gpu-") {
		t.Errorf("running status %+v, want a start and one of the H100 nodes", st)
	}

	p, err := c.cs.CoreV1().Pods(b.Namespace()).Get(ctx(t), spec.SandboxID, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctr := p.Spec.Containers[0]
	lim := ctr.Resources.Limits
	for name, want := range map[corev1.ResourceName]string{ResourceGPU: "2", corev1.ResourceCPU: "1500m", corev1.ResourceMemory: "8Gi",
		corev1.ResourceEphemeralStorage: "5Gi"} {
		if q := lim[name]; q.String() != want {
			t.Errorf("limit %s = %s, want %s", name, q.String(), want)
		}
	}
	if p.Spec.NodeSelector[LabelGPUProduct] != "NVIDIA-H100-80GB-HBM3" {
		t.Errorf("node selector %v, want the H100's product", p.Spec.NodeSelector)
	}
	if p.Labels[LabelSandbox] != spec.SandboxID || ctr.Image != img || strings.Join(ctr.Command, " ") != "sleep 600" {
		t.Errorf("labels %v image %s command %v", p.Labels, ctr.Image, ctr.Command)
	}
	if p.Spec.RuntimeClassName == nil || *p.Spec.RuntimeClassName != rc {
		t.Errorf("runtime class %v, want %s", p.Spec.RuntimeClassName, rc)
	}
	if d := p.Spec.ActiveDeadlineSeconds; d == nil || *d != 3600+300 {
		t.Errorf("activeDeadlineSeconds %v, want the booked hour and 5 minutes", d)
	}
	sc := ctr.SecurityContext
	if sc == nil || !*sc.RunAsNonRoot || *sc.RunAsUser == 0 || *sc.AllowPrivilegeEscalation || !*sc.ReadOnlyRootFilesystem ||
		len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("security context %+v, want non-root, no escalation, read-only root, ALL dropped, RuntimeDefault seccomp", sc)
	}
	if *p.Spec.AutomountServiceAccountToken || p.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Error("the Pod mounts a service account token or restarts")
	}
	home := false
	for _, m := range ctr.VolumeMounts {
		home = home || (m.MountPath == HomeDir && !m.ReadOnly)
	}
	var envHome string
	for _, e := range ctr.Env {
		if e.Name == "HOME" {
			envHome = e.Value
		}
	}
	if !home || envHome != HomeDir || p.Spec.Volumes[0].EmptyDir == nil || p.Spec.Volumes[0].EmptyDir.SizeLimit.String() != "5Gi" {
		t.Errorf("home: mounts %+v, HOME=%s, volumes %+v", ctr.VolumeMounts, envHome, p.Spec.Volumes)
	}
	if len(ctr.Ports) != 1 || ctr.Ports[0].ContainerPort != 8888 {
		t.Errorf("ports %+v", ctr.Ports)
	}
	np, err := c.cs.NetworkingV1().NetworkPolicies(b.Namespace()).Get(ctx(t), spec.SandboxID, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if np.Spec.PodSelector.MatchLabels[LabelSandbox] != spec.SandboxID || len(np.Spec.PolicyTypes) != 2 || len(np.Spec.Egress) != 0 || len(np.Spec.Ingress) != 0 {
		t.Errorf("network policy %+v, want ingress and egress denied to this sandbox", np.Spec)
	}

	// With network, egress is left to the cluster; ingress from other Pods stays denied.
	net := backend.Spec{SandboxID: "net-" + suffix(), Command: []string{"sleep", "600"}, Network: true}
	started(t, b, net)
	np, err = c.cs.NetworkingV1().NetworkPolicies(b.Namespace()).Get(ctx(t), net.SandboxID, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(np.Spec.PolicyTypes) != 1 || np.Spec.PolicyTypes[0] != networkingv1.PolicyTypeIngress {
		t.Errorf("network policy of a networked sandbox: %+v, want ingress only", np.Spec.PolicyTypes)
	}

	// Stop: the Pod and policy go, the record answers.
	end, err := b.Stop(ctx(t), spec.SandboxID, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if end.Reason != backend.ReasonStopped || !end.StartedAt.Equal(st.StartedAt) || end.EndedAt.Before(end.StartedAt) {
		t.Errorf("stop = %+v, want stopped, started when it ran (%s)", end, st.StartedAt)
	}
	if _, err := c.cs.CoreV1().Pods(b.Namespace()).Get(ctx(t), spec.SandboxID, metav1.GetOptions{}); !isNotFound(err) {
		t.Errorf("pod after stop: %v, want gone", err)
	}
	if _, err := c.cs.NetworkingV1().NetworkPolicies(b.Namespace()).Get(ctx(t), spec.SandboxID, metav1.GetOptions{}); !isNotFound(err) {
		t.Errorf("network policy after stop: %v, want gone", err)
	}
}

// TestRefused: what the backend cannot honour is refused before anything is created.
func TestRefused(t *testing.T) {
	c := connect(t)
	b := newBackend(t, c, func(o *Options) { o.DefaultImage = "" })
	for name, s := range map[string]backend.Spec{
		"no image":        {SandboxID: "r1", Command: []string{"true"}},
		"other namespace": {SandboxID: "r2", Command: []string{"true"}, Image: "x@sha256:1", Settings: map[string]string{SettingNamespace: "kube-system"}},
		"unknown model":   {SandboxID: "r3", Command: []string{"true"}, Image: "x@sha256:1", Devices: []backend.Device{{Index: 0, Model: "tpu-v5"}}},
		"bad class":       {SandboxID: "r4", Command: []string{"true"}, Image: "x@sha256:1", Settings: map[string]string{SettingRuntimeClass: "Not_A_Name"}},
	} {
		if _, err := b.Start(ctx(t), s); !errors.Is(err, backend.ErrInvalidSpec) {
			t.Errorf("%s: Start = %v, want ErrInvalidSpec", name, err)
		}
	}
	if list, err := b.List(ctx(t)); err != nil || len(list) != 0 {
		t.Errorf("List = %+v, %v; want nothing created", list, err)
	}
}

// TestEnded: a Pod that fails (evicted, its booked time run out, its container exiting or OOM-killed) ends
// the sandbox with the reason, and the end stays what was first recorded.
func TestEnded(t *testing.T) {
	c := connect(t)
	b := newBackend(t, c)
	now := metav1.NewTime(time.Now().Add(-time.Minute).Truncate(time.Second))
	later := metav1.NewTime(now.Add(30 * time.Second))
	cases := []struct {
		name   string
		status func(*corev1.PodStatus)
		reason string
		code   int
	}{
		{"evicted", func(s *corev1.PodStatus) {
			s.Phase, s.Reason, s.Message = corev1.PodFailed, "Evicted", "The node was low on resource: ephemeral-storage."
		}, backend.ReasonKilled, -1},
		{"deadline", func(s *corev1.PodStatus) {
			s.Phase, s.Reason, s.Message = corev1.PodFailed, "DeadlineExceeded", "Pod was active on the node longer than the specified deadline"
		}, backend.ReasonKilled, -1},
		{"exit", func(s *corev1.PodStatus) {
			s.Phase = corev1.PodFailed
			s.ContainerStatuses[0].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 3, Reason: "Error", StartedAt: now, FinishedAt: later}}
		}, backend.ReasonExited, 3},
		{"oom", func(s *corev1.PodStatus) {
			s.Phase = corev1.PodFailed
			s.ContainerStatuses[0].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled", StartedAt: now, FinishedAt: later}}
		}, backend.ReasonOOMKilled, 137},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := tc.name + "-" + suffix()
			started(t, b, backend.Spec{SandboxID: id, Command: []string{"sleep", "600"}})
			run := waitFor(t, b, id, "running", running)
			pods := c.cs.CoreV1().Pods(b.Namespace())
			p, err := pods.Get(ctx(t), id, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			// kwok leaves the status of a Pod so annotated to the test, as a kubelet's own report.
			p.Annotations = map[string]string{"kwok.x-k8s.io/status": "custom"}
			if p, err = pods.Update(ctx(t), p, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			if len(p.Status.ContainerStatuses) == 0 {
				t.Fatalf("kwok reported no container status: %+v", p.Status)
			}
			tc.status(&p.Status)
			if _, err := pods.UpdateStatus(ctx(t), p, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			end := waitFor(t, b, id, "ended", backend.Status.Ended)
			if end.Reason != tc.reason || end.ExitCode != tc.code || end.EndedAt.Before(end.StartedAt) {
				t.Errorf("ended %+v, want reason %s, exit code %d", end, tc.reason, tc.code)
			}
			if tc.code > 0 && (!end.StartedAt.Equal(now.Time) || !end.EndedAt.Equal(later.Time)) {
				t.Errorf("ended %+v, want the container's start %s and finish %s", end, now, later)
			}
			if tc.code < 0 && !end.StartedAt.Equal(run.StartedAt) {
				t.Errorf("ended %+v, want the start it ran from (%s)", end, run.StartedAt)
			}
			if again, err := b.Stop(ctx(t), id, time.Second); err != nil || again != end {
				t.Errorf("Stop of an ended sandbox = %+v, %v; want its end %+v", again, err, end)
			}
			if in, err := b.Inspect(ctx(t), id); err != nil || in != end {
				t.Errorf("Inspect after stop = %+v, %v; want %+v", in, err, end)
			}
		})
	}
}

// TestNodeLost: the node a sandbox runs on is deleted; the sandbox ends lost, and its Pod is freed.
func TestNodeLost(t *testing.T) {
	c := connect(t)
	product := "TEST-LOST-" + suffix()
	b := newBackend(t, c, func(o *Options) { o.Models = map[string]string{product: "h100-80gb"} })
	node := c.gpuNode(t, product, 4, false)
	id := "lost-" + suffix()
	started(t, b, backend.Spec{SandboxID: id, Command: []string{"sleep", "600"}, Devices: []backend.Device{{Index: 0, Model: "h100-80gb"}}})
	run := waitFor(t, b, id, "running", running)
	if !strings.Contains(run.Message, node) {
		t.Fatalf("running %+v, want on %s", run, node)
	}
	if err := c.cs.CoreV1().Nodes().Delete(ctx(t), node, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	end := waitFor(t, b, id, "lost", backend.Status.Ended)
	if end.Reason != backend.ReasonLost || !end.StartedAt.Equal(run.StartedAt) || end.EndedAt.Before(end.StartedAt) {
		t.Errorf("after the node's deletion %+v, want lost, started %s", end, run.StartedAt)
	}
	deadline := time.Now().Add(pollDeadline)
	for {
		_, err := c.cs.CoreV1().Pods(b.Namespace()).Get(ctx(t), id, metav1.GetOptions{})
		if isNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lost sandbox's pod is still there: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if again, err := b.Inspect(ctx(t), id); err != nil || again != end {
		t.Errorf("Inspect = %+v, %v; want the recorded end %+v", again, err, end)
	}
}

// TestPodDeletedElsewhere: a Pod deleted by someone else than the backend (an operator, the eviction
// controller) ends its sandbox lost, seen by the watch.
func TestPodDeletedElsewhere(t *testing.T) {
	c := connect(t)
	b := newBackend(t, c)
	id := "gone-" + suffix()
	started(t, b, backend.Spec{SandboxID: id, Command: []string{"sleep", "600"}})
	waitFor(t, b, id, "running", running)
	if err := c.cs.CoreV1().Pods(b.Namespace()).Delete(ctx(t), id, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	end := waitFor(t, b, id, "ended", backend.Status.Ended)
	if end.Reason != backend.ReasonLost {
		t.Errorf("after an outside deletion %+v, want lost", end)
	}
}

// TestReconcile: a new backend (the agent restarted) sees what the old one started, running and ended, from
// the API server alone, and can stop and remove it.
func TestReconcile(t *testing.T) {
	c := connect(t)
	old := newBackend(t, c)
	started(t, old, backend.Spec{SandboxID: "keep", Command: []string{"sleep", "600"}})
	started(t, old, backend.Spec{SandboxID: "done", Command: []string{"sleep", "600"}})
	waitFor(t, old, "keep", "running", running)
	waitFor(t, old, "done", "running", running)
	end, err := old.Stop(ctx(t), "done", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	old.Close()

	b, err := New(Options{Config: c.cfg, Namespace: old.Namespace()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	list, err := b.List(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].SandboxID != "done" || list[0] != end || list[1].SandboxID != "keep" || list[1].State != backend.StateRunning {
		t.Fatalf("List after restart = %+v, want done (%+v) and keep running", list, end)
	}
	if st, err := b.Stop(ctx(t), "keep", time.Second); err != nil || st.Reason != backend.ReasonStopped {
		t.Errorf("Stop by the new backend = %+v, %v", st, err)
	}
}

// TestNodes: the inventory is the GPU nodes, their GPUs under the models their product labels map to,
// cordoned nodes draining, NotReady ones down.
func TestNodes(t *testing.T) {
	c := connect(t)
	product := "TEST-INV-" + suffix()
	b := newBackend(t, c, func(o *Options) {
		o.Models = map[string]string{"NVIDIA-H100-80GB-HBM3": "h100-80gb", product: "a100-40gb"}
	})
	ready := c.gpuNode(t, product, 2, true)
	cordoned := c.gpuNode(t, product, 2, true)
	down := c.gpuNode(t, product, 2, true)
	c.editNode(t, cordoned, false, func(n *corev1.Node) { n.Spec.Unschedulable = true })
	c.editNode(t, down, true, func(n *corev1.Node) { n.Status.Conditions[0].Status = corev1.ConditionFalse })
	nodes, err := b.Nodes(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]events.AgentNodeV1{}
	for _, n := range nodes {
		got[n.Name] = n
	}
	for _, name := range []string{"tamarack-gpu-0", "tamarack-gpu-1"} {
		n := got[name]
		if len(n.Devices) != 8 || n.Devices[7].GPUModel != "h100-80gb" || n.Devices[7].Index != 7 || n.State != events.AgentNodeReady ||
			n.CPUMillis != 64000 || n.MemoryBytes != 512<<30 {
			t.Errorf("node %s = %+v, want 8 h100-80gb, 64 CPUs, 512 GiB, ready", name, n)
		}
	}
	for name, want := range map[string]string{ready: events.AgentNodeReady, cordoned: events.AgentNodeDraining, down: events.AgentNodeDown} {
		n := got[name]
		if len(n.Devices) != 2 || n.Devices[0].GPUModel != "a100-40gb" || n.State != want {
			t.Errorf("node %s = %+v, want 2 a100-40gb, %s", name, n, want)
		}
		if err := n.Validate(); err != nil {
			t.Errorf("node %s: %v", name, err)
		}
	}
}

// TestStreamsOnKwok: kwok runs no containers and no kubelet API, so logs, exec and port-forward of a
// running sandbox cannot work here; each must answer a clear error (or, for logs, nothing), not hang or
// crash. What they do on a real node is not tested here.
func TestStreamsOnKwok(t *testing.T) {
	c := connect(t)
	b := newBackend(t, c)
	id := "streams-" + suffix()
	started(t, b, backend.Spec{SandboxID: id, Command: []string{"sleep", "600"}})
	waitFor(t, b, id, "running", running)
	if rc, err := b.Logs(ctx(t), id, false); err == nil {
		out, err := io.ReadAll(rc)
		t.Logf("logs on kwok: %q, %v", out, err)
		rc.Close()
	} else if t.Logf("logs on kwok: %v", err); !strings.Contains(err.Error(), "pods/log") {
		t.Errorf("Logs = %v, want an error naming pods/log", err)
	}
	if term, err := b.Terminal(ctx(t), id, []string{"sh"}); err == nil {
		_ = term.Resize(80, 24)
		_, err := io.ReadAll(term)
		if t.Logf("terminal on kwok: %v", err); err == nil {
			t.Error("a terminal on kwok read to the end without an error")
		}
		term.Close()
	} else if t.Logf("terminal on kwok: %v", err); !strings.Contains(err.Error(), "terminal "+id) {
		t.Errorf("Terminal = %v, want an error naming the sandbox", err)
	}
	if conn, err := b.DialPort(ctx(t), id, 8888); err == nil {
		buf := make([]byte, 1)
		_, err := conn.Read(buf)
		if t.Logf("port on kwok: %v", err); err == nil {
			t.Error("a port on kwok answered")
		}
		conn.Close()
	} else {
		t.Logf("port on kwok: %v", err)
	}
}
