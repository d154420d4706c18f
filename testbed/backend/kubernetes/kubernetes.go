package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	authv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/tamarack-ai/tamarack/testbed/backend"
)

// Pool settings a Kubernetes pool may set (staff edit them on the pool).
const (
	// SettingNamespace pins the pool's namespace: an agent started with another --kube-namespace refuses the
	// pool's sandboxes rather than put them where the site did not mean them to go.
	SettingNamespace = "kubernetes.namespace"
	// SettingRuntimeClass is the RuntimeClass of the pool's Pods (gvisor, kata…); it overrides the agent's.
	SettingRuntimeClass = "kubernetes.runtime_class"
)

// Labels and names the backend puts on what it creates.
const (
	LabelSandbox   = "tamarack.ai/sandbox"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	managedBy      = "tamarack"
	// ResourceGPU is what NVIDIA's device plugin offers; LabelGPUProduct is what GPU feature discovery sets.
	ResourceGPU     = "nvidia.com/gpu"
	LabelGPUProduct = "nvidia.com/gpu.product"
	// HomeDir is the sandbox's home, its writable volume (the root is read-only).
	HomeDir = "/home/sandbox"
	// UID is the user the sandbox runs as (never root).
	UID = 1000
)

// DefaultModels maps the product labels GPU feature discovery sets to the testbed's GPU models.
var DefaultModels = map[string]string{
	"NVIDIA-H100-80GB-HBM3": "h100-80gb", "NVIDIA-H200": "h200-141gb", "NVIDIA-H200-141GB-HBM3e": "h200-141gb",
	"NVIDIA-A100-SXM4-80GB": "a100-80gb", "NVIDIA-A100-80GB-PCIe": "a100-80gb", "NVIDIA-A100-SXM4-40GB": "a100-40gb",
	"NVIDIA-A100-PCIE-40GB": "a100-40gb", "NVIDIA-L40S": "l40s-48gb", "NVIDIA-L4": "l4-24gb",
	"NVIDIA-RTX-6000-Ada-Generation": "rtx6000ada-48gb",
}

// Options configure a Kubernetes Backend.
type Options struct {
	// Config reaches the API server (a kubeconfig's, or rest.InClusterConfig). Required.
	Config *rest.Config
	// Namespace holds the pool's Pods, their NetworkPolicies and records. Required.
	Namespace string
	// RuntimeClass is the Pods' RuntimeClass (e.g. gvisor); empty: the cluster's default. The pool setting
	// kubernetes.runtime_class overrides it.
	RuntimeClass string
	// Models maps nvidia.com/gpu.product label values to the testbed's GPU models; nil: DefaultModels. A
	// sandbox's model is asked for by every product that maps to it.
	Models map[string]string
	// DefaultImage is run by a spec that names no image (tests); empty: such a spec is refused.
	DefaultImage string
	// Grace is added to a sandbox's booked duration for activeDeadlineSeconds, so that the testbed's own
	// stop comes first. Default 5 minutes.
	Grace time.Duration
	// EphemeralBytes caps the Pod's writable storage (home, /tmp, its logs). Default 10 GiB.
	EphemeralBytes int64
	// LogKeep is how much of a sandbox's output is kept in its record when its Pod is deleted (a ConfigMap
	// holds at most 1 MiB). Default 512 KiB.
	LogKeep int64
	// StartWait is how long Start waits for the Pod to run before it answers pending. Default 5 s.
	StartWait time.Duration
	// Resync is the period of the reconcile sweep (records without Pods, Pods on vanished nodes, Pods
	// without records). Default one minute.
	Resync time.Duration
	Logger *slog.Logger
}

// Backend runs sandboxes as Pods. Safe for concurrent use.
type Backend struct {
	opts     Options
	log      *slog.Logger
	cs       kubernetes.Interface
	products map[string][]string // model → product label values

	mu       sync.Mutex
	starting map[string]bool // sandboxes whose record exists and whose Pod is being created

	watchOnce sync.Once
	stopWatch context.CancelFunc // set within watchOnce
	watching  chan struct{}      // closed when the watch and sweep have ended
}

var _ backend.Backend = (*Backend)(nil)

// New checks the options. It does not call the API server: Check does; the watch starts at the first call.
func New(opts Options) (*Backend, error) {
	var errs []error
	if opts.Config == nil {
		errs = append(errs, errors.New("an API server config is required"))
	}
	for _, m := range validation.IsDNS1123Label(opts.Namespace) {
		errs = append(errs, fmt.Errorf("namespace %q: %s", opts.Namespace, m))
	}
	if opts.RuntimeClass != "" {
		for _, m := range validation.IsDNS1123Subdomain(opts.RuntimeClass) {
			errs = append(errs, fmt.Errorf("runtime class %q: %s", opts.RuntimeClass, m))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("kubernetes backend: %w", err)
	}
	if opts.Models == nil {
		opts.Models = DefaultModels
	}
	if opts.Grace <= 0 {
		opts.Grace = 5 * time.Minute
	}
	if opts.EphemeralBytes <= 0 {
		opts.EphemeralBytes = 10 << 30
	}
	if opts.LogKeep <= 0 {
		opts.LogKeep = 512 << 10
	}
	if opts.StartWait <= 0 {
		opts.StartWait = 5 * time.Second
	}
	if opts.Resync <= 0 {
		opts.Resync = time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	cfg := rest.CopyConfig(opts.Config)
	cfg.UserAgent = "tamarack-agent"
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes backend: %w", err)
	}
	opts.Config = cfg
	products := map[string][]string{}
	for _, p := range slices.Sorted(maps.Keys(opts.Models)) {
		products[opts.Models[p]] = append(products[opts.Models[p]], p)
	}
	return &Backend{opts: opts, log: opts.Logger.With("backend", "kubernetes", "namespace", opts.Namespace), cs: cs,
		products: products, starting: map[string]bool{}, watching: make(chan struct{})}, nil
}

// Kind returns "kubernetes".
func (b *Backend) Kind() string { return "kubernetes" }

// Namespace is where this backend's Pods run.
func (b *Backend) Namespace() string { return b.opts.Namespace }

// Check asks the API server whether the namespace exists and whether the agent may do what it needs there
// (SelfSubjectAccessReview for each verb and resource of the RBAC in docs/sandbox-backends.md). Each
// failure wraps backend.ErrUnavailable.
func (b *Backend) Check(ctx context.Context) error {
	if _, err := b.cs.CoreV1().Namespaces().Get(ctx, b.opts.Namespace, metav1.GetOptions{}); err != nil {
		// An agent with a namespaced Role may not read namespaces: only NotFound is an answer.
		if isNotFound(err) {
			return fmt.Errorf("%w: namespace %s does not exist: kubectl create namespace %s", backend.ErrUnavailable, b.opts.Namespace, b.opts.Namespace)
		}
		if !isForbidden(err) {
			return fmt.Errorf("%w: API server at %s: %w", backend.ErrUnavailable, b.opts.Config.Host, err)
		}
	}
	var errs []error
	for _, a := range requiredAccess(b.opts.Namespace) {
		r, err := b.cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx,
			&authv1.SelfSubjectAccessReview{Spec: authv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &a}}, metav1.CreateOptions{})
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("access review: %w", err))
		case !r.Status.Allowed:
			where := "in namespace " + a.Namespace
			if a.Namespace == "" {
				where = "cluster-wide"
			}
			errs = append(errs, fmt.Errorf("may not %s %s %s", a.Verb, resourceName(a), where))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: the agent's service account lacks RBAC (infra/k8s/agent): %w", backend.ErrUnavailable, err)
	}
	return nil
}

// requiredAccess is what the agent does: the Role and ClusterRole of infra/k8s/agent grant exactly this.
func requiredAccess(ns string) []authv1.ResourceAttributes {
	var out []authv1.ResourceAttributes
	add := func(group, resource, sub string, verbs ...string) {
		for _, v := range verbs {
			out = append(out, authv1.ResourceAttributes{Namespace: ns, Group: group, Resource: resource, Subresource: sub, Verb: v})
		}
	}
	add("", "pods", "", "get", "list", "watch", "create", "delete")
	add("", "pods", "exec", "create")
	add("", "pods", "log", "get")
	add("", "pods", "portforward", "create")
	add("", "configmaps", "", "get", "list", "create", "update", "delete")
	add("networking.k8s.io", "networkpolicies", "", "get", "create", "delete")
	for _, v := range []string{"get", "list"} {
		out = append(out, authv1.ResourceAttributes{Resource: "nodes", Verb: v})
	}
	return out
}

func resourceName(a authv1.ResourceAttributes) string {
	r := a.Resource
	if a.Subresource != "" {
		r += "/" + a.Subresource
	}
	if a.Group != "" {
		r += "." + a.Group
	}
	return r
}

// Close stops the backend's watch and sweep; the backend must not be used after.
func (b *Backend) Close() {
	b.watchOnce.Do(func() { close(b.watching) }) // never started: nothing to stop, and now never will
	if b.stopWatch != nil {
		b.stopWatch()
	}
	<-b.watching
}
