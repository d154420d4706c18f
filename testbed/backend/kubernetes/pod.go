package kubernetes

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	"github.com/tamarack-ai/tamarack/testbed/backend"
)

// Pod volumes: the home (the sandbox's writable space) and /tmp; the root filesystem is read-only.
const (
	volumeHome = "home"
	volumeTmp  = "tmp"
)

// podFor builds the sandbox's Pod and NetworkPolicy. It refuses (backend.ErrInvalidSpec) what it cannot
// honour: no image, a namespace or RuntimeClass setting it cannot use, GPUs of a model no product maps to.
func (b *Backend) podFor(s backend.Spec) (*corev1.Pod, *networkingv1.NetworkPolicy, error) {
	var probs []string
	if ns, ok := s.Settings[SettingNamespace]; ok && ns != b.opts.Namespace {
		probs = append(probs, fmt.Sprintf("%s %q: this agent runs sandboxes in namespace %q (its --kube-namespace)", SettingNamespace, ns, b.opts.Namespace))
	}
	rc := b.opts.RuntimeClass
	if v, ok := s.Settings[SettingRuntimeClass]; ok {
		rc = v
		for _, m := range validation.IsDNS1123Subdomain(v) {
			probs = append(probs, fmt.Sprintf("%s %q: %s", SettingRuntimeClass, v, m))
		}
	}
	img := s.Image
	if img == "" {
		img = b.opts.DefaultImage
	}
	if img == "" {
		probs = append(probs, "image: empty (a Kubernetes pool's nodes pull the template's image)")
	}
	var model string
	for _, d := range s.Devices {
		switch {
		case d.Model == "":
			probs = append(probs, fmt.Sprintf("devices: index %d has no model", d.Index))
		case model != "" && d.Model != model:
			probs = append(probs, fmt.Sprintf("devices: models %s and %s in one sandbox", model, d.Model))
		}
		model = d.Model
	}
	products := b.products[model]
	if model != "" && len(products) == 0 {
		probs = append(probs, fmt.Sprintf("devices: no nvidia.com/gpu.product maps to model %s (--kube-gpu-models)", model))
	}
	if len(probs) > 0 {
		return nil, nil, fmt.Errorf("%w: %s", backend.ErrInvalidSpec, strings.Join(probs, "; "))
	}

	labels := map[string]string{LabelSandbox: s.SandboxID, LabelManagedBy: managedBy}
	env := []corev1.EnvVar{}
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		if k != "HOME" {
			env = append(env, corev1.EnvVar{Name: k, Value: s.Env[k]})
		}
	}
	env = append(env, corev1.EnvVar{Name: "HOME", Value: HomeDir})

	limits := corev1.ResourceList{corev1.ResourceEphemeralStorage: *resource.NewQuantity(b.opts.EphemeralBytes, resource.BinarySI)}
	if s.Limits.CPUMillis > 0 {
		limits[corev1.ResourceCPU] = *resource.NewMilliQuantity(s.Limits.CPUMillis, resource.DecimalSI)
	}
	if s.Limits.MemoryBytes > 0 {
		limits[corev1.ResourceMemory] = *resource.NewQuantity(s.Limits.MemoryBytes, resource.BinarySI)
	}
	if n := len(s.Devices); n > 0 {
		limits[ResourceGPU] = *resource.NewQuantity(int64(n), resource.DecimalSI)
	}
	// Requests equal to limits: the sandbox gets what it was sold (Guaranteed QoS when CPU and memory are set).
	requests := limits.DeepCopy()

	c := corev1.Container{
		Name:       "sandbox",
		Image:      img,
		Command:    s.Command, // empty: the image's entrypoint
		Env:        env,
		WorkingDir: HomeDir,
		Resources:  corev1.ResourceRequirements{Limits: limits, Requests: requests},
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             ptr.To(true),
			RunAsUser:                ptr.To[int64](UID),
			RunAsGroup:               ptr.To[int64](UID),
			AllowPrivilegeEscalation: ptr.To(false),
			Privileged:               ptr.To(false),
			ReadOnlyRootFilesystem:   ptr.To(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		VolumeMounts: []corev1.VolumeMount{{Name: volumeHome, MountPath: HomeDir}, {Name: volumeTmp, MountPath: "/tmp"}},
		Stdin:        false,
		TTY:          false,
	}
	for _, p := range s.Ports {
		c.Ports = append(c.Ports, corev1.ContainerPort{ContainerPort: int32(p), Protocol: corev1.ProtocolTCP})
	}
	home := resource.NewQuantity(b.opts.EphemeralBytes, resource.BinarySI)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: s.SandboxID, Namespace: b.opts.Namespace, Labels: labels},
		Spec: corev1.PodSpec{
			Containers:                    []corev1.Container{c},
			RestartPolicy:                 corev1.RestartPolicyNever,
			AutomountServiceAccountToken:  ptr.To(false),
			EnableServiceLinks:            ptr.To(false),
			Hostname:                      s.SandboxID,
			TerminationGracePeriodSeconds: ptr.To[int64](10),
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   ptr.To(true),
				RunAsUser:      ptr.To[int64](UID),
				RunAsGroup:     ptr.To[int64](UID),
				FSGroup:        ptr.To[int64](UID),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Volumes: []corev1.Volume{
				{Name: volumeHome, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: home}}},
				{Name: volumeTmp, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: resource.NewQuantity(1<<30, resource.BinarySI)}}},
			},
		},
	}
	if rc != "" {
		pod.Spec.RuntimeClassName = ptr.To(rc)
	}
	if s.Duration > 0 {
		pod.Spec.ActiveDeadlineSeconds = ptr.To(int64((s.Duration + b.opts.Grace).Seconds()))
	}
	if len(products) > 0 {
		if len(products) == 1 {
			pod.Spec.NodeSelector = map[string]string{LabelGPUProduct: products[0]}
		} else {
			pod.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
					MatchExpressions: []corev1.NodeSelectorRequirement{{Key: LabelGPUProduct, Operator: corev1.NodeSelectorOpIn, Values: products}},
				}}},
			}}
		}
		// GPU nodes are commonly tainted so that only GPU work lands there.
		pod.Spec.Tolerations = []corev1.Toleration{{Key: ResourceGPU, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
	}

	// Ingress from other Pods is always denied (ports are reached through the API server's port-forward,
	// which NetworkPolicy does not govern); egress only when the template asks for network.
	types := []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	if !s.Network {
		types = append(types, networkingv1.PolicyTypeEgress)
	}
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: s.SandboxID, Namespace: b.opts.Namespace, Labels: labels},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{LabelSandbox: s.SandboxID}},
			PolicyTypes: types,
		},
	}
	return pod, np, nil
}
