package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// placeholderSecrets stand in for Secrets created out of band (prod), so `--check-config` sees a value of
// the right shape.
var placeholderSecrets = map[string]map[string]string{
	"tamarack-db": {"TAMARACK_DB": "postgres://tamarack:secret@db.internal:5432/tamarack?sslmode=verify-full"},
}

// buildTamarack builds cmd/tamarack once for checkConfigs.
func buildTamarack(r *report, root string) string {
	dir, err := os.MkdirTemp("", "tamarack-infra-check-bin-")
	if err != nil {
		r.fail("cmd/tamarack", "%v", err)
		return ""
	}
	bin := filepath.Join(dir, "tamarack")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/tamarack")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		r.fail("cmd/tamarack", "go build: %v\n%s", err, out)
		return ""
	}
	return bin
}

// checkConfigs runs each Deployment's `tamarack serve ...` with --check-config and exactly the environment
// its pod would get (ConfigMap, Secrets, literal env), so every setting passes the binary's own validation.
func checkConfigs(r *report, where, bin string, objs []runtime.Object) {
	if bin == "" {
		return
	}
	data := map[string]map[string]string{} // "ConfigMap/name" or "Secret/name" → data
	for _, o := range objs {
		switch x := o.(type) {
		case *corev1.ConfigMap:
			data["ConfigMap/"+x.Name] = x.Data
		case *corev1.Secret:
			m := map[string]string{}
			for k, v := range x.Data {
				m[k] = string(v)
			}
			for k, v := range x.StringData {
				m[k] = v
			}
			data["Secret/"+x.Name] = m
		}
	}
	for name, m := range placeholderSecrets {
		if _, ok := data["Secret/"+name]; !ok {
			data["Secret/"+name] = m
		}
	}
	n := 0
	for _, o := range objs {
		d, ok := o.(*appsv1.Deployment)
		if !ok {
			continue
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if len(c.Args) == 0 || c.Args[0] != "serve" || !strings.HasPrefix(c.Image, "tamarack") && !strings.Contains(c.Image, "/tamarack") {
				continue
			}
			env := map[string]string{}
			for _, ef := range c.EnvFrom {
				switch {
				case ef.ConfigMapRef != nil:
					for k, v := range data["ConfigMap/"+ef.ConfigMapRef.Name] {
						env[k] = v
					}
				case ef.SecretRef != nil:
					for k, v := range data["Secret/"+ef.SecretRef.Name] {
						env[k] = v
					}
				}
			}
			for _, e := range c.Env {
				switch {
				case e.ValueFrom == nil:
					env[e.Name] = e.Value
				case e.ValueFrom.SecretKeyRef != nil:
					if v, ok := data["Secret/"+e.ValueFrom.SecretKeyRef.Name][e.ValueFrom.SecretKeyRef.Key]; ok {
						env[e.Name] = v
					}
				}
			}
			// Only the pod's environment: nothing of this machine's TAMARACK_* leaks in.
			var list []string
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "TAMARACK_") {
					list = append(list, kv)
				}
			}
			for k, v := range env {
				list = append(list, k+"="+v)
			}
			sort.Strings(list)
			cmd := exec.Command(bin, append(append([]string{}, c.Args...), "--check-config")...)
			cmd.Env = list
			cmd.Dir = os.TempDir()
			if out, err := cmd.CombinedOutput(); err != nil {
				r.fail(where, "Deployment %s: tamarack %s --check-config: %v\n%s", d.Name, strings.Join(c.Args, " "), err, out)
				continue
			}
			n++
		}
	}
	r.ok(where, "%d Deployments' `tamarack serve` pass --check-config with their pods' environment", n)
}
