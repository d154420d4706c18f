package main

import (
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	nodev1 "k8s.io/api/node/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// buildKustomization is `kustomize build dir`, one YAML document per object.
func buildKustomization(dir string) ([][]byte, error) {
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, res := range m.Resources() {
		b, err := res.AsYAML()
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme,
		networkingv1.AddToScheme, nodev1.AddToScheme, policyv1.AddToScheme, rbacv1.AddToScheme} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}()

// decodeStrict decodes each document into its API type, failing on unknown or duplicate fields.
func decodeStrict(r *report, where string, docs [][]byte) []runtime.Object {
	strict := serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
	lenient := serializer.NewCodecFactory(scheme).UniversalDeserializer()
	var out []runtime.Object
	for _, d := range docs {
		obj, _, err := strict.Decode(d, nil, nil)
		if err == nil {
			out = append(out, obj)
			continue
		}
		// Name the object, and keep checking its references when only strictness failed.
		obj, gvk, lerr := lenient.Decode(d, nil, nil)
		name := "?"
		if m, ok := obj.(metav1.Object); ok && lerr == nil {
			name = m.GetName()
			out = append(out, obj)
		}
		r.fail(where, "%v %s: %v", gvk.Kind, name, err)
	}
	return out
}

type key struct{ kind, ns, name string }

func (k key) String() string { return k.kind + "/" + k.ns + "/" + k.name }

type workload struct {
	kind, ns, name string
	pod            *corev1.PodTemplateSpec
	claims         []string // volumeClaimTemplates
}

// checkReferences checks what kubectl would accept but a running cluster would not make work.
func checkReferences(r *report, where string, objs []runtime.Object, external []string, known map[string]bool) {
	fail := func(format string, a ...any) { r.fail(where, format, a...) }
	have := map[key]runtime.Object{}
	keysOf := map[key]map[string]bool{} // ConfigMap and Secret keys
	var workloads []workload
	for _, o := range objs {
		switch x := o.(type) {
		case *corev1.Namespace:
			have[key{"Namespace", "", x.Name}] = x
		case *corev1.ConfigMap:
			have[key{"ConfigMap", x.Namespace, x.Name}] = x
			keysOf[key{"ConfigMap", x.Namespace, x.Name}] = setOf(x.Data)
			checkSettings(r, where, "ConfigMap "+x.Name, x.Data, known)
		case *corev1.Secret:
			have[key{"Secret", x.Namespace, x.Name}] = x
			ks := setOf(x.StringData)
			for k := range x.Data {
				ks[k] = true
			}
			keysOf[key{"Secret", x.Namespace, x.Name}] = ks
		case *corev1.Service:
			have[key{"Service", x.Namespace, x.Name}] = x
		case *corev1.ServiceAccount:
			have[key{"ServiceAccount", x.Namespace, x.Name}] = x
		case *rbacv1.Role:
			have[key{"Role", x.Namespace, x.Name}] = x
		case *appsv1.Deployment:
			workloads = append(workloads, workload{"Deployment", x.Namespace, x.Name, &x.Spec.Template, nil})
			if sel, err := metaSelector(x.Spec.Selector); err != nil || !sel.Matches(labels.Set(x.Spec.Template.Labels)) {
				fail("Deployment %s: selector does not match its pod template (%v)", x.Name, err)
			}
		case *appsv1.StatefulSet:
			var claims []string
			for _, c := range x.Spec.VolumeClaimTemplates {
				claims = append(claims, c.Name)
			}
			workloads = append(workloads, workload{"StatefulSet", x.Namespace, x.Name, &x.Spec.Template, claims})
			if sel, err := metaSelector(x.Spec.Selector); err != nil || !sel.Matches(labels.Set(x.Spec.Template.Labels)) {
				fail("StatefulSet %s: selector does not match its pod template (%v)", x.Name, err)
			}
		case *batchv1.Job:
			workloads = append(workloads, workload{"Job", x.Namespace, x.Name, &x.Spec.Template, nil})
		}
	}
	for _, e := range external {
		p := strings.SplitN(e, "/", 3)
		have[key{p[0], p[1], p[2]}] = nil
	}
	exists := func(k key) bool { _, ok := have[k]; return ok }
	nsOK := func(kind, ns, name string) {
		if ns == "" {
			fail("%s %s has no namespace", kind, name)
		} else if !exists(key{"Namespace", "", ns}) {
			fail("%s %s: namespace %q is not in the build", kind, name, ns)
		}
	}
	podsIn := func(ns string, sel labels.Selector) []workload {
		var out []workload
		for _, w := range workloads {
			if w.ns == ns && sel.Matches(labels.Set(w.pod.Labels)) {
				out = append(out, w)
			}
		}
		return out
	}

	for _, w := range workloads {
		nsOK(w.kind, w.ns, w.name)
		checkPod(r, where, w, exists, keysOf, known)
	}
	for _, o := range objs {
		switch x := o.(type) {
		case *corev1.Service:
			nsOK("Service", x.Namespace, x.Name)
			matched := podsIn(x.Namespace, labels.SelectorFromSet(x.Spec.Selector))
			if len(matched) == 0 {
				fail("Service %s selects no pod template", x.Name)
			}
			for _, p := range x.Spec.Ports {
				if p.TargetPort.Type == intstr.String {
					for _, w := range matched {
						if !hasPort(w.pod, p.TargetPort.StrVal) {
							fail("Service %s: targetPort %q is not a port of %s %s", x.Name, p.TargetPort.StrVal, w.kind, w.name)
						}
					}
				}
			}
		case *appsv1.StatefulSet:
			if svc, ok := have[key{"Service", x.Namespace, x.Spec.ServiceName}].(*corev1.Service); !ok || svc == nil {
				fail("StatefulSet %s: serviceName %q is not a Service of the build", x.Name, x.Spec.ServiceName)
			}
		case *policyv1.PodDisruptionBudget:
			nsOK("PodDisruptionBudget", x.Namespace, x.Name)
			sel, err := metaSelector(x.Spec.Selector)
			if err != nil || len(podsIn(x.Namespace, sel)) == 0 {
				fail("PodDisruptionBudget %s selects no pod template", x.Name)
			}
		case *networkingv1.Ingress:
			nsOK("Ingress", x.Namespace, x.Name)
			for _, rule := range x.Spec.Rules {
				for _, p := range rule.HTTP.Paths {
					svc, _ := have[key{"Service", x.Namespace, p.Backend.Service.Name}].(*corev1.Service)
					if svc == nil {
						fail("Ingress %s: %s goes to Service %q, not in the build", x.Name, p.Path, p.Backend.Service.Name)
						continue
					}
					if !slices.ContainsFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool {
						return sp.Name == p.Backend.Service.Port.Name && sp.Port == p.Backend.Service.Port.Number ||
							p.Backend.Service.Port.Name == "" && sp.Port == p.Backend.Service.Port.Number ||
							p.Backend.Service.Port.Name != "" && sp.Name == p.Backend.Service.Port.Name
					}) {
						fail("Ingress %s: %s goes to a port Service %s does not have", x.Name, p.Path, svc.Name)
					}
				}
			}
		case *rbacv1.RoleBinding:
			nsOK("RoleBinding", x.Namespace, x.Name)
			if x.RoleRef.Kind == "Role" && !exists(key{"Role", x.Namespace, x.RoleRef.Name}) {
				fail("RoleBinding %s: Role %q is not in namespace %s", x.Name, x.RoleRef.Name, x.Namespace)
			}
			for _, s := range x.Subjects {
				if s.Kind == "ServiceAccount" && !exists(key{"ServiceAccount", s.Namespace, s.Name}) {
					fail("RoleBinding %s: ServiceAccount %s/%s is not in the build", x.Name, s.Namespace, s.Name)
				}
			}
		case *networkingv1.NetworkPolicy:
			nsOK("NetworkPolicy", x.Namespace, x.Name)
			if sel, err := metaSelector(&x.Spec.PodSelector); err != nil {
				fail("NetworkPolicy %s: %v", x.Name, err)
			} else if !sel.Empty() && len(podsIn(x.Namespace, sel)) == 0 {
				fail("NetworkPolicy %s selects no pod template", x.Name)
			}
			for _, rule := range x.Spec.Ingress {
				for _, peer := range rule.From {
					if peer.PodSelector == nil || peer.NamespaceSelector != nil {
						continue
					}
					if sel, err := metaSelector(peer.PodSelector); err == nil && !sel.Empty() && len(podsIn(x.Namespace, sel)) == 0 {
						fail("NetworkPolicy %s admits pods %v, and no pod template has those labels", x.Name, sel)
					}
				}
			}
		case *corev1.ResourceQuota:
			nsOK("ResourceQuota", x.Namespace, x.Name)
		}
	}
}

func metaSelector(s *metav1.LabelSelector) (labels.Selector, error) {
	if s == nil {
		return nil, fmt.Errorf("no selector")
	}
	return metav1.LabelSelectorAsSelector(s)
}

func setOf[V any](m map[string]V) map[string]bool {
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}

func hasPort(pod *corev1.PodTemplateSpec, name string) bool {
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == name {
				return true
			}
		}
	}
	return false
}

// checkSettings flags TAMARACK_* names this checkout's config.go does not read (a typo, or a setting of a
// branch not merged yet: a note, since an unknown variable is ignored, not an error).
func checkSettings[V any](r *report, where, what string, vars map[string]V, known map[string]bool) {
	names := make([]string, 0, len(vars))
	for name := range vars {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if strings.HasPrefix(name, "TAMARACK_") && known != nil && !known[name] {
			r.note(where, "%s sets %s, which cmd/tamarack/config.go does not read (yet)", what, name)
		}
	}
}

// checkPod checks one pod template: references, probes and, in namespace tamarack, the restricted profile.
func checkPod(r *report, where string, w workload, exists func(key) bool, keysOf map[key]map[string]bool, known map[string]bool) {
	fail := func(format string, a ...any) { r.fail(where, "%s %s: "+format, append([]any{w.kind, w.name}, a...)...) }
	spec := w.pod.Spec
	if sa := spec.ServiceAccountName; sa != "" && sa != "default" && !exists(key{"ServiceAccount", w.ns, sa}) {
		fail("ServiceAccount %q is not in the build", sa)
	}
	volumes := map[string]bool{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = true
		if v.ConfigMap != nil && !exists(key{"ConfigMap", w.ns, v.ConfigMap.Name}) && (v.ConfigMap.Optional == nil || !*v.ConfigMap.Optional) {
			fail("volume %s: ConfigMap %q is not in the build", v.Name, v.ConfigMap.Name)
		}
		if v.Secret != nil && !exists(key{"Secret", w.ns, v.Secret.SecretName}) && (v.Secret.Optional == nil || !*v.Secret.Optional) {
			fail("volume %s: Secret %q is not in the build", v.Name, v.Secret.SecretName)
		}
	}
	for _, c := range w.claims {
		volumes[c] = true
	}
	restricted := w.ns == "tamarack"
	podSC := spec.SecurityContext
	if restricted && (podSC == nil || podSC.SeccompProfile == nil || podSC.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault) {
		fail("namespace tamarack enforces the restricted profile: set seccompProfile RuntimeDefault")
	}
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		if c.Image == "" {
			fail("container %s has no image", c.Name)
		}
		for _, ef := range c.EnvFrom {
			if ef.ConfigMapRef != nil && !exists(key{"ConfigMap", w.ns, ef.ConfigMapRef.Name}) && !opt(ef.ConfigMapRef.Optional) {
				fail("envFrom ConfigMap %q is not in the build", ef.ConfigMapRef.Name)
			}
			if ef.SecretRef != nil && !exists(key{"Secret", w.ns, ef.SecretRef.Name}) && !opt(ef.SecretRef.Optional) {
				fail("envFrom Secret %q is not in the build", ef.SecretRef.Name)
			}
		}
		env := map[string]bool{}
		for _, e := range c.Env {
			env[e.Name] = true
			if e.ValueFrom == nil {
				continue
			}
			if ref := e.ValueFrom.SecretKeyRef; ref != nil && !opt(ref.Optional) {
				k := key{"Secret", w.ns, ref.Name}
				if !exists(k) {
					fail("env %s: Secret %q is not in the build", e.Name, ref.Name)
				} else if ks := keysOf[k]; ks != nil && !ks[ref.Key] {
					fail("env %s: Secret %q has no key %q", e.Name, ref.Name, ref.Key)
				}
			}
			if ref := e.ValueFrom.ConfigMapKeyRef; ref != nil && !opt(ref.Optional) {
				k := key{"ConfigMap", w.ns, ref.Name}
				if !exists(k) || !keysOf[k][ref.Key] {
					fail("env %s: ConfigMap %q key %q is not in the build", e.Name, ref.Name, ref.Key)
				}
			}
		}
		checkSettings(r, where, w.kind+" "+w.name, env, known)
		for _, m := range c.VolumeMounts {
			if !volumes[m.Name] {
				fail("container %s mounts %q, which is no volume of the pod", c.Name, m.Name)
			}
		}
		for _, p := range []*corev1.Probe{c.StartupProbe, c.ReadinessProbe, c.LivenessProbe} {
			if p != nil && p.HTTPGet != nil && p.HTTPGet.Port.Type == intstr.String && !hasPort(w.pod, p.HTTPGet.Port.StrVal) {
				fail("container %s probes port %q, which it does not declare", c.Name, p.HTTPGet.Port.StrVal)
			}
		}
		if restricted {
			sc := c.SecurityContext
			nonRoot := (podSC != nil && opt(podSC.RunAsNonRoot)) || (sc != nil && opt(sc.RunAsNonRoot))
			switch {
			case !nonRoot:
				fail("container %s: restricted profile needs runAsNonRoot", c.Name)
			case sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
				fail("container %s: restricted profile needs allowPrivilegeEscalation: false", c.Name)
			case sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL"):
				fail("container %s: restricted profile needs capabilities.drop [ALL]", c.Name)
			case sc.Privileged != nil && *sc.Privileged:
				fail("container %s: privileged in a restricted namespace", c.Name)
			}
			if c.Resources.Limits.Memory().IsZero() {
				fail("container %s has no memory limit", c.Name)
			}
		}
	}
}

func opt(b *bool) bool { return b != nil && *b }
