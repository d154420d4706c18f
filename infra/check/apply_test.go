package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"
)

// TestApply is "infra/ applies cleanly": every object of every kustomization the static check builds is
// applied, server-side and dry-run (dryRun=All), to the real API server of infra/kube/start.sh, which runs
// admission, defaulting, validation and the field schema exactly as a cluster would at
// `kubectl apply --server-side`. The namespaces the objects live in are created for real first (a dry run
// cannot put an object into a namespace that does not exist) and deleted at the end. It fails naming each
// object the server refused, with the server's message, and each pod template the server warns would
// violate its namespace's Pod Security level (the API server admits the Deployment and then refuses its pods).
//
// TAMARACK_TEST_KUBE names the admin kubeconfig; without it the test skips, except in CI (CI set), where a
// host that cannot run the control plane fails the run.
func TestApply(t *testing.T) {
	kubeconfig := os.Getenv("TAMARACK_TEST_KUBE")
	if kubeconfig == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("TAMARACK_TEST_KUBE is not set in CI: .ci/run starts infra/kube/start.sh and must export it")
		}
		t.Skip("TAMARACK_TEST_KUBE not set: run `eval \"$(infra/kube/start.sh)\"` first")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	warnings := &warningLog{}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatalf("kubeconfig %s: %v", kubeconfig, err)
	}
	cfg.WarningHandler = warnings
	cfg.QPS, cfg.Burst = 100, 200 // client-go's default 5 per second would make a hundred applies take 20 s
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))

	type build struct {
		dir  string
		objs []*unstructured.Unstructured
	}
	var all []build
	namespaces := map[string]map[string]string{} // name -> the labels the build gives it
	for _, b := range builds {
		docs, err := buildKustomization(filepath.Join("..", "..", b.dir))
		if err != nil {
			t.Fatalf("%s: kustomize build: %v", b.dir, err)
		}
		var objs []*unstructured.Unstructured
		for _, d := range docs {
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal(d, &u.Object); err != nil {
				t.Fatalf("%s: %v", b.dir, err)
			}
			if u.GetKind() == "Namespace" && namespaces[u.GetName()] == nil {
				namespaces[u.GetName()] = u.GetLabels()
			} else if ns := u.GetNamespace(); ns != "" {
				if _, ok := namespaces[ns]; !ok {
					namespaces[ns] = nil
				}
			}
			objs = append(objs, u)
		}
		all = append(all, build{b.dir, objs})
	}
	createNamespaces(ctx, t, cs, namespaces)

	for _, b := range all {
		applied := 0
		for _, u := range b.objs {
			what := fmt.Sprintf("%s: %s %s", b.dir, u.GetKind(), objectName(u))
			gvk := u.GroupVersionKind()
			m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err != nil {
				t.Errorf("%s: the server does not serve %s: %v", what, gvk, err)
				continue
			}
			var r dynamic.ResourceInterface = dyn.Resource(m.Resource)
			if m.Scope.Name() == "namespace" {
				if u.GetNamespace() == "" {
					t.Errorf("%s: namespaced, but has no namespace", what)
					continue
				}
				r = dyn.Resource(m.Resource).Namespace(u.GetNamespace())
			}
			opts := metav1.ApplyOptions{FieldManager: "tamarack-infra-check", Force: true, DryRun: []string{metav1.DryRunAll}}
			warnings.reset()
			_, err = r.Apply(ctx, u.GetName(), u, opts)
			for _, w := range warnings.take() {
				if strings.Contains(w, "would violate PodSecurity") {
					t.Errorf("%s: the server warns: %s", what, w)
				} else {
					t.Logf("%s: the server warns: %s", what, w)
				}
			}
			if err != nil {
				t.Errorf("%s: refused: %v", what, err)
				continue
			}
			applied++
		}
		t.Logf("%s: %d of %d objects applied (dry run)", b.dir, applied, len(b.objs))
	}
}

// createNamespaces creates each namespace that does not exist yet, with the labels the build gives it (its
// Pod Security level, which the server checks workloads against), waiting first for one an earlier run is
// still deleting, and deletes those it created when the test ends. One that exists is not the test's and
// is left as it is.
func createNamespaces(ctx context.Context, t *testing.T, cs kubernetes.Interface, names map[string]map[string]string) {
	t.Helper()
	for name, labels := range names {
		for {
			ns, err := cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				break
			}
			if err != nil {
				t.Fatalf("namespace %s: %v", name, err)
			}
			if ns.Status.Phase != corev1.NamespaceTerminating {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("namespace %s is still terminating (an earlier run deleted it; is kube-controller-manager running?)", name)
			case <-time.After(200 * time.Millisecond):
			}
		}
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			continue
		}
		if err != nil {
			t.Fatalf("create namespace %s: %v", name, err)
		}
		t.Cleanup(func() {
			err := cs.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("delete namespace %s: %v", name, err)
			}
		})
	}
}

func objectName(u *unstructured.Unstructured) string {
	if u.GetNamespace() == "" {
		return u.GetName()
	}
	return u.GetNamespace() + "/" + u.GetName()
}

// warningLog keeps the warnings the server sent with the last request (the Warning header: deprecations,
// Pod Security violations of a workload's pods).
type warningLog struct {
	mu sync.Mutex
	ws []string
}

var _ rest.WarningHandler = (*warningLog)(nil)

func (w *warningLog) HandleWarningHeader(code int, agent, text string) {
	if code != 299 || text == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ws = append(w.ws, text)
}

func (w *warningLog) reset() { w.take() }

func (w *warningLog) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	ws := w.ws
	w.ws = nil
	return ws
}
