package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/tamarack-ai/tamarack/testbed"
	"github.com/tamarack-ai/tamarack/testbed/backend/kubernetes"
)

// The Kubernetes side of `tamarack agent run --backend kubernetes`: the agent runs in the cluster (or beside
// it with a kubeconfig), and each sandbox is a Pod whose node pulls the image.

// kubeFlags are `agent run`'s Kubernetes flags, each defaulting to its TAMARACK_AGENT_KUBE_* variable.
type kubeFlags struct {
	config, namespace, models, runtimeClass *string
}

func addKubeFlags(fs *flag.FlagSet) kubeFlags {
	return kubeFlags{
		config:       fs.String("kube-config", os.Getenv("TAMARACK_AGENT_KUBE_CONFIG"), "kubernetes: a kubeconfig file; empty: the in-cluster service account"),
		namespace:    fs.String("kube-namespace", envOr("TAMARACK_AGENT_KUBE_NAMESPACE", "tamarack-sandboxes"), "kubernetes: the namespace of the pool's Pods (a pool's kubernetes.namespace setting must name the same)"),
		models:       fs.String("kube-gpu-models", os.Getenv("TAMARACK_AGENT_KUBE_GPU_MODELS"), "kubernetes: nvidia.com/gpu.product labels' GPU models, PRODUCT=MODEL[,PRODUCT=MODEL…], added to the built-in ones (e.g. NVIDIA-H100-80GB-HBM3=h100-80gb)"),
		runtimeClass: fs.String("kube-runtime-class", os.Getenv("TAMARACK_AGENT_KUBE_RUNTIME_CLASS"), "kubernetes: the Pods' RuntimeClass (gvisor, kata…); empty: the cluster's default (a pool's kubernetes.runtime_class overrides it)"),
	}
}

var (
	kubeLabel     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	kubeSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	// A label value, as GPU feature discovery writes products (NVIDIA-H100-80GB-HBM3).
	kubeLabelValue = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`)
)

// options checks the flags as a whole (every problem at once) and builds the backend's options; the
// kubeconfig is read (not the API server called) so that a wrong path is the first thing an operator sees.
func (f kubeFlags) options(log *slog.Logger) (kubernetes.Options, error) {
	var errs []error
	var cfg *rest.Config
	var err error
	if *f.config == "" {
		if cfg, err = rest.InClusterConfig(); err != nil {
			errs = append(errs, fmt.Errorf("--kube-config is empty and this is not a Pod with a service account (%w): give a kubeconfig", err))
		}
	} else if cfg, err = clientcmd.BuildConfigFromFlags("", *f.config); err != nil {
		errs = append(errs, fmt.Errorf("--kube-config %s: %w", *f.config, err))
	}
	if !kubeLabel.MatchString(*f.namespace) {
		errs = append(errs, fmt.Errorf("--kube-namespace %q: want a namespace name, 1-63 of a-z 0-9 -", *f.namespace))
	}
	if rc := *f.runtimeClass; rc != "" && (len(rc) > 253 || !kubeSubdomain.MatchString(rc)) {
		errs = append(errs, fmt.Errorf("--kube-runtime-class %q: want a RuntimeClass name (a-z 0-9 - .)", rc))
	}
	models, err := parseKubeModels(*f.models)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return kubernetes.Options{}, err
	}
	return kubernetes.Options{Config: cfg, Namespace: *f.namespace, RuntimeClass: *f.runtimeClass, Models: models, Logger: log}, nil
}

// parseKubeModels reads --kube-gpu-models PRODUCT=MODEL[,…] over the built-in map. Models are the testbed's.
func parseKubeModels(v string) (map[string]string, error) {
	out := map[string]string{}
	for p, m := range kubernetes.DefaultModels {
		out[p] = m
	}
	if strings.TrimSpace(v) == "" {
		return out, nil
	}
	var errs []error
	seen := map[string]bool{}
	for _, pair := range strings.Split(v, ",") {
		product, model, ok := strings.Cut(strings.TrimSpace(pair), "=")
		switch {
		case !ok || !kubeLabelValue.MatchString(product):
			errs = append(errs, fmt.Errorf("%q: want PRODUCT=MODEL, PRODUCT an nvidia.com/gpu.product label value", pair))
		case !slices.Contains(testbed.GPUModels(), model):
			errs = append(errs, fmt.Errorf("%q: unknown GPU model %q; known: %s", pair, model, strings.Join(testbed.GPUModels(), ", ")))
		case seen[product]:
			errs = append(errs, fmt.Errorf("%q: %s mapped twice", pair, product))
		default:
			seen[product], out[product] = true, model
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("--kube-gpu-models: %w (e.g. NVIDIA-H100-80GB-HBM3=h100-80gb)", err)
	}
	return out, nil
}
