package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
	"sigs.k8s.io/yaml"
)

// The Tiltfile runs against stand-ins for the Tilt builtins it uses. Each takes the parameters Tilt's own
// takes (same names, same optionality), records the call, and returns what Tilt returns (kustomize a Blob,
// decode_yaml_stream a list of dicts). Afterwards the declared resources are assembled roughly as Tilt does:
// one resource per workload, renamed by new_name, plus the groups of objects given with new_name.

// blob is Tilt's Blob: YAML text, as opposed to a string, which k8s_yaml takes as a file path.
type blob struct{ text, source string }

func (b blob) String() string        { return b.text }
func (b blob) Type() string          { return "blob" }
func (b blob) Freeze()               {}
func (b blob) Truth() starlark.Bool  { return b.text != "" }
func (b blob) Hash() (uint32, error) { return starlark.String(b.text).Hash() }

type portForward struct {
	local, container int
	name             string
}

func (p portForward) String() string {
	return fmt.Sprintf("port_forward(%d, %d)", p.local, p.container)
}
func (p portForward) Type() string          { return "port_forward" }
func (p portForward) Freeze()               {}
func (p portForward) Truth() starlark.Bool  { return true }
func (p portForward) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable") }

type object struct {
	kind, name, namespace string
	images                []string
	podTemplate           bool
}

type resourceOpts struct {
	workload, newName string
	deps, objects     []string
	ports             []portForward
}

type tiltState struct {
	root      string
	images    []string
	objects   []object
	resources []resourceOpts
}

func checkTiltfile(r *report, root string) {
	path := filepath.Join(root, "Tiltfile")
	src, err := os.ReadFile(path)
	if err != nil {
		r.fail("Tiltfile", "%v", err)
		return
	}
	st := &tiltState{root: root}
	thread := &starlark.Thread{Name: "Tiltfile", Print: func(_ *starlark.Thread, msg string) { r.note("Tiltfile", "print: %s", msg) }}
	// Tilt's dialect: top-level if/for, set, while, recursion.
	opts := &syntax.FileOptions{Set: true, While: true, TopLevelControl: true, GlobalReassign: true, Recursion: true}
	if _, err := starlark.ExecFileOptions(opts, thread, path, src, st.builtins()); err != nil {
		if ee, ok := err.(*starlark.EvalError); ok {
			r.fail("Tiltfile", "%s", ee.Backtrace())
		} else {
			r.fail("Tiltfile", "%v", err)
		}
		return
	}
	st.assemble(r)
}

func (st *tiltState) builtins() starlark.StringDict {
	b := func(name string, fn func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error)) *starlark.Builtin {
		return starlark.NewBuiltin(name, fn)
	}
	return starlark.StringDict{
		"local": b("local", func(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var cmd, bat, dir starlark.Value
			var quiet, echoOff bool
			var env *starlark.Dict
			var stdin starlark.Value
			if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "command", &cmd, "quiet?", &quiet, "command_bat?", &bat,
				"echo_off?", &echoOff, "env?", &env, "dir?", &dir, "stdin?", &stdin); err != nil {
				return nil, err
			}
			return blob{text: "check\n", source: "local"}, nil // not run: the checker executes nothing
		}),
		"docker_build": b("docker_build", func(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var ref, context string
			var dockerfile string
			var buildArgs *starlark.Dict
			var rest [16]starlark.Value
			if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "ref", &ref, "context", &context,
				"build_args?", &buildArgs, "dockerfile?", &dockerfile, "dockerfile_contents?", &rest[0],
				"live_update?", &rest[1], "match_in_env_vars?", &rest[2], "ignore?", &rest[3], "only?", &rest[4],
				"entrypoint?", &rest[5], "target?", &rest[6], "ssh?", &rest[7], "network?", &rest[8],
				"secret?", &rest[9], "extra_tag?", &rest[10], "container_args?", &rest[11], "cache_from?", &rest[12],
				"pull?", &rest[13], "platform?", &rest[14], "extra_hosts?", &rest[15]); err != nil {
				return nil, err
			}
			if _, err := os.Stat(filepath.Join(st.root, context)); err != nil {
				return nil, fmt.Errorf("docker_build context: %w", err)
			}
			if dockerfile == "" {
				dockerfile = filepath.Join(context, "Dockerfile")
			}
			if _, err := os.Stat(filepath.Join(st.root, dockerfile)); err != nil {
				return nil, fmt.Errorf("docker_build dockerfile: %w", err)
			}
			st.images = append(st.images, ref)
			return starlark.None, nil
		}),
		"kustomize": b("kustomize", func(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var path, kbin string
			var flags *starlark.List
			if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "paths", &path, "kustomize_bin?", &kbin, "flags?", &flags); err != nil {
				return nil, err
			}
			docs, err := buildKustomization(filepath.Join(st.root, path))
			if err != nil {
				return nil, err
			}
			var parts []string
			for _, d := range docs {
				parts = append(parts, string(d))
			}
			return blob{text: strings.Join(parts, "---\n"), source: path}, nil
		}),
		"k8s_yaml": b("k8s_yaml", func(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var v starlark.Value
			var allowDuplicates bool
			if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "yaml", &v, "allow_duplicates?", &allowDuplicates); err != nil {
				return nil, err
			}
			bl, ok := v.(blob)
			if !ok {
				return nil, fmt.Errorf("k8s_yaml: the checker only follows Blobs (got %s)", v.Type())
			}
			objs, err := decodeStream(bl.text)
			if err != nil {
				return nil, err
			}
			for _, o := range objs {
				st.objects = append(st.objects, toObject(o))
			}
			return starlark.None, nil
		}),
		"decode_yaml_stream": b("decode_yaml_stream", func(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var v starlark.Value
			if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "yaml", &v); err != nil {
				return nil, err
			}
			var text string
			switch x := v.(type) {
			case blob:
				text = x.text
			case starlark.String:
				text = string(x)
			default:
				return nil, fmt.Errorf("decode_yaml_stream: want a string or Blob, got %s", v.Type())
			}
			objs, err := decodeStream(text)
			if err != nil {
				return nil, err
			}
			var list []starlark.Value
			for _, o := range objs {
				list = append(list, toStarlark(o))
			}
			return starlark.NewList(list), nil
		}),
		"k8s_resource": b("k8s_resource", func(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var o resourceOpts
			var ports, extra, trigger, deps, objects, autoInit, readiness, links, labels, discovery starlark.Value
			if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "workload?", &o.workload, "new_name?", &o.newName,
				"port_forwards?", &ports, "extra_pod_selectors?", &extra, "trigger_mode?", &trigger,
				"resource_deps?", &deps, "objects?", &objects, "auto_init?", &autoInit, "pod_readiness?", &readiness,
				"links?", &links, "labels?", &labels, "discovery_strategy?", &discovery); err != nil {
				return nil, err
			}
			var err error
			if o.deps, err = strings_(deps); err != nil {
				return nil, fmt.Errorf("resource_deps: %w", err)
			}
			if o.objects, err = strings_(objects); err != nil {
				return nil, fmt.Errorf("objects: %w", err)
			}
			if _, err = strings_(labels); err != nil {
				return nil, fmt.Errorf("labels: %w", err)
			}
			if ports != nil {
				seq, ok := ports.(starlark.Sequence)
				if !ok {
					return nil, fmt.Errorf("port_forwards: want a list")
				}
				it := seq.Iterate()
				var x starlark.Value
				for it.Next(&x) {
					pf, ok := x.(portForward)
					if !ok {
						it.Done()
						return nil, fmt.Errorf("port_forwards: the checker wants port_forward() values, got %s", x.Type())
					}
					o.ports = append(o.ports, pf)
				}
				it.Done()
			}
			if o.workload == "" && (o.newName == "" || len(o.objects) == 0) {
				return nil, fmt.Errorf("k8s_resource without a workload needs new_name and objects")
			}
			st.resources = append(st.resources, o)
			return starlark.None, nil
		}),
		"port_forward": b("port_forward", func(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var p portForward
			var path, host string
			if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "local_port", &p.local, "container_port?", &p.container,
				"name?", &p.name, "link_path?", &path, "host?", &host); err != nil {
				return nil, err
			}
			return p, nil
		}),
		"link": b("link", func(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var url, name string
			if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "url", &url, "name?", &name); err != nil {
				return nil, err
			}
			return starlark.String(url), nil
		}),
	}
}

// assemble groups the objects into resources as Tilt does and checks the result.
func (st *tiltState) assemble(r *report) {
	fail := func(format string, a ...any) { r.fail("Tiltfile", format, a...) }
	workloads := map[string]bool{} // by name (Tilt names a resource after its workload when the name is unique)
	usedImage := map[string]bool{}
	for _, o := range st.objects {
		if o.podTemplate {
			if workloads[o.name] {
				fail("two workloads named %q: Tilt would qualify their names", o.name)
			}
			workloads[o.name] = true
		}
		for _, img := range o.images {
			usedImage[strings.SplitN(img, ":", 2)[0]] = true
		}
	}
	for _, img := range st.images {
		if !usedImage[img] {
			fail("docker_build(%q): no container in the manifests uses that image", img)
		}
	}
	names := map[string]bool{}
	for w := range workloads {
		names[w] = true
	}
	grouped := map[int]string{}
	ports := map[int]string{}
	for _, o := range st.resources {
		name := o.workload
		if o.workload != "" {
			if !workloads[o.workload] {
				fail("k8s_resource(%q): no such workload", o.workload)
				continue
			}
			if o.newName != "" {
				delete(names, o.workload)
				name = o.newName
			}
		} else {
			name = o.newName
		}
		if names[name] && o.workload == "" {
			fail("k8s_resource: resource %q declared twice", name)
		}
		names[name] = true
		for _, sel := range o.objects {
			n := 0
			for i, obj := range st.objects {
				if matches(sel, obj) {
					n++
					if prev, ok := grouped[i]; ok {
						fail("object %s is in resources %q and %q", sel, prev, name)
					}
					grouped[i] = name
				}
			}
			if n != 1 {
				fail("k8s_resource(%q): selector %q matches %d objects, want 1", name, sel, n)
			}
		}
		for _, p := range o.ports {
			if prev, ok := ports[p.local]; ok {
				fail("local port %d forwarded twice (%s, %s)", p.local, prev, name)
			}
			ports[p.local] = name
		}
	}
	// resource_deps: every name known, no cycle.
	deps := map[string][]string{}
	for _, o := range st.resources {
		name := o.workload
		if o.newName != "" {
			name = o.newName
		}
		for _, d := range o.deps {
			if !names[d] {
				fail("resource %q depends on %q, which is no resource", name, d)
			}
		}
		deps[name] = o.deps
	}
	state := map[string]int{}
	var visit func(string, []string) bool
	visit = func(n string, path []string) bool {
		switch state[n] {
		case 1:
			fail("resource_deps cycle: %s", strings.Join(append(path, n), " → "))
			return false
		case 2:
			return true
		}
		state[n] = 1
		for _, d := range deps[n] {
			if !visit(d, append(path, n)) {
				return false
			}
		}
		state[n] = 2
		return true
	}
	var all []string
	for n := range names {
		all = append(all, n)
	}
	sort.Strings(all)
	for _, n := range all {
		visit(n, nil)
	}
	// What Tilt would leave "uncategorized" (Services are attached to the workloads they select).
	var loose []string
	for i, o := range st.objects {
		if _, ok := grouped[i]; !ok && !o.podTemplate && o.kind != "Service" {
			loose = append(loose, o.kind+"/"+o.name)
		}
	}
	if len(loose) > 0 {
		fail("objects in no resource (Tilt's uncategorized, applied without ordering): %s", strings.Join(loose, ", "))
	}
	r.ok("Tiltfile", "%d resources (%s), %d objects, %d port-forwards, image %v", len(names), strings.Join(all, ", "),
		len(st.objects), len(ports), st.images)
}

// matches is Tilt's object selector "name[:kind[:namespace]]": each part an exact, case-insensitive match.
func matches(sel string, o object) bool {
	p := strings.Split(sel, ":")
	eq := func(a, b string) bool { return strings.EqualFold(a, b) }
	switch len(p) {
	case 1:
		return eq(p[0], o.name)
	case 2:
		return eq(p[0], o.name) && eq(p[1], o.kind)
	case 3:
		return eq(p[0], o.name) && eq(p[1], o.kind) && (p[2] == "" || eq(p[2], o.namespace))
	}
	return false
}

func decodeStream(text string) ([]map[string]any, error) {
	var out []map[string]any
	for _, doc := range strings.Split("\n"+text, "\n---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		j, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := json.Unmarshal(j, &m); err != nil {
			return nil, err
		}
		if m != nil {
			out = append(out, m)
		}
	}
	return out, nil
}

func toObject(m map[string]any) object {
	meta, _ := m["metadata"].(map[string]any)
	o := object{}
	o.kind, _ = m["kind"].(string)
	o.name, _ = meta["name"].(string)
	o.namespace, _ = meta["namespace"].(string)
	spec, _ := m["spec"].(map[string]any)
	if tmpl, ok := spec["template"].(map[string]any); ok {
		o.podTemplate = true
		ps, _ := tmpl["spec"].(map[string]any)
		for _, list := range []string{"initContainers", "containers"} {
			cs, _ := ps[list].([]any)
			for _, c := range cs {
				if cm, ok := c.(map[string]any); ok {
					if img, ok := cm["image"].(string); ok {
						o.images = append(o.images, img)
					}
				}
			}
		}
	}
	return o
}

func toStarlark(v any) starlark.Value {
	switch x := v.(type) {
	case map[string]any:
		d := starlark.NewDict(len(x))
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			_ = d.SetKey(starlark.String(k), toStarlark(x[k]))
		}
		return d
	case []any:
		l := make([]starlark.Value, len(x))
		for i, e := range x {
			l[i] = toStarlark(e)
		}
		return starlark.NewList(l)
	case string:
		return starlark.String(x)
	case bool:
		return starlark.Bool(x)
	case float64:
		if x == float64(int64(x)) {
			return starlark.MakeInt64(int64(x))
		}
		return starlark.Float(x)
	default:
		return starlark.None
	}
}

// strings_ converts an optional list of strings.
func strings_(v starlark.Value) ([]string, error) {
	if v == nil || v == starlark.None {
		return nil, nil
	}
	if s, ok := v.(starlark.String); ok {
		return []string{string(s)}, nil
	}
	seq, ok := v.(starlark.Sequence)
	if !ok {
		return nil, fmt.Errorf("want a list of strings, got %s", v.Type())
	}
	var out []string
	it := seq.Iterate()
	defer it.Done()
	var x starlark.Value
	for it.Next(&x) {
		s, ok := x.(starlark.String)
		if !ok {
			return nil, fmt.Errorf("want strings, got %s", x.Type())
		}
		out = append(out, string(s))
	}
	return out, nil
}
