package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// checkWithTools hands the configuration files embedded in ConfigMaps to the programs that read them, when
// those programs are installed here: nats-server -t for the NATS cluster's nats.conf, nginx -t for the dev
// gateway. A missing program is a note, not a failure.
func checkWithTools(r *report, where string, objs []runtime.Object) {
	for _, o := range objs {
		cm, ok := o.(*corev1.ConfigMap)
		if !ok {
			continue
		}
		switch {
		case cm.Name == "nats-config":
			runTool(r, where, "nats.conf", "nats-server", cm.Data["nats.conf"], func(dir, file string) []string {
				return []string{"-t", "-c", file}
			}, "SERVER_NAME=nats-0")
		case cm.Name == "gateway":
			// The upstreams are Service names; nginx -t resolves them, so point them at this machine.
			conf := cm.Data["default.conf"]
			for _, svc := range []string{"identity", "marketplace", "testbed", "billing", "ui"} {
				conf = strings.ReplaceAll(conf, "http://"+svc+":8080", "http://127.0.0.1:8080")
			}
			runTool(r, where, "gateway default.conf", "nginx", conf, func(dir, file string) []string {
				main := filepath.Join(dir, "nginx.conf")
				_ = os.WriteFile(main, []byte("pid "+dir+"/nginx.pid;\nerror_log stderr;\nevents {}\nhttp {\n"+
					"  client_body_temp_path "+dir+"; proxy_temp_path "+dir+"; fastcgi_temp_path "+dir+";\n"+
					"  uwsgi_temp_path "+dir+"; scgi_temp_path "+dir+"; access_log off;\n"+
					"  include "+file+";\n}\n"), 0o600)
				return []string{"-t", "-p", dir, "-c", main}
			})
		}
	}
}

func runTool(r *report, where, what, prog, content string, args func(dir, file string) []string, env ...string) {
	path, err := exec.LookPath(prog)
	if err != nil {
		for _, alt := range []string{"/usr/sbin/" + prog, "/usr/local/sbin/" + prog} {
			if _, e := os.Stat(alt); e == nil {
				path, err = alt, nil
				break
			}
		}
	}
	if err != nil {
		r.note(where, "%s not checked: %s is not installed here", what, prog)
		return
	}
	dir, err := os.MkdirTemp("", "tamarack-infra-check-")
	if err != nil {
		r.fail(where, "%v", err)
		return
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "file.conf")
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		r.fail(where, "%v", err)
		return
	}
	cmd := exec.Command(path, args(dir, file)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.fail(where, "%s -t rejects %s: %v\n%s", prog, what, err, out)
		return
	}
	r.ok(where, "%s accepts %s", prog, what)
}
