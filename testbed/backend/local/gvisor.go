package local

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/tamarack-ai/tamarack/testbed/backend"
)

// gVisor (runsc) as the runtime of a sandbox. The spec is the same as runc's (ocispec): runsc reads its
// user namespace and id maps, mounts, capabilities, no_new_privs, cgroup limits and (with --oci-seccomp)
// Docker's seccomp profile. What differs is below: the flags, how a terminal's process is found and
// ended, and how a port is reached. See docs/sandbox-backends.md for what the host sees.

// runtimeFor is the runtime a new sandbox runs on: its pool's SettingRuntime, runc when absent.
func (b *Backend) runtimeFor(s backend.Spec) (ociRuntime, error) {
	switch name := s.Settings[SettingRuntime]; name {
	case "", RuntimeRunc:
		if b.opts.Runtime == "" {
			return ociRuntime{}, fmt.Errorf("%w: runc not found: install it with `apt-get install runc`", backend.ErrUnavailable)
		}
		return b.runtime(), nil
	case RuntimeRunsc:
		if b.opts.Runsc == "" {
			return ociRuntime{}, fmt.Errorf("%w: this pool runs sandboxes on gVisor but runsc is not configured: "+
				"build it with infra/gvisor/build.sh and start serve with --runsc=<path> (TAMARACK_RUNSC)", backend.ErrUnavailable)
		}
		if !executable(b.opts.Runsc) {
			return ociRuntime{}, fmt.Errorf("%w: runsc %q is not an executable file: build it with infra/gvisor/build.sh", backend.ErrUnavailable, b.opts.Runsc)
		}
		return ociRuntime{Bin: b.opts.Runsc, Root: filepath.Join(b.opts.Root, ".runsc"), Kind: RuntimeRunsc, Flags: runscFlags(s)}, nil
	default:
		return ociRuntime{}, fmt.Errorf("%w: settings.%s %q: want %s or %s", backend.ErrInvalidSpec, SettingRuntime, name, RuntimeRunc, RuntimeRunsc)
	}
}

// runscFlags are the global flags of every runsc command for the sandbox s.
//
//   - --platform=systrap: the Sentry intercepts the application's system calls with seccomp's
//     SECCOMP_RET_TRAP and runs them itself; no KVM or ptrace needed (gVisor's default, said so that a
//     change of default does not change pools silently).
//   - --network=sandbox without network: the Sentry's own network stack (netstack) in a new, empty
//     network namespace, so the sandbox has only its loopback, and DialPort reaches it through
//     `runsc port-forward` (--network=none would refuse that). With network: --network=host, the host's
//     network namespace through the host kernel's sockets, as runc shares it (runsc refuses
//     --network=sandbox in the host's namespace, since it would take over the host's addresses).
//   - --oci-seccomp: Docker's profile from the spec is applied inside the Sentry as well, so a sandbox
//     refuses the same calls on both runtimes; the Sentry itself always runs under gVisor's own filter.
//   - --overlay2=none: the root stays the read-only root the spec asks for; gVisor's default would put
//     a writable overlay over it, backed by a file inside the (shared) image directory.
//   - --gofer-network-namespace=new: each gofer (the Sentry's file server) in an empty network
//     namespace of its own; the default shares one that runsc keeps alive as a bind mount under its
//     root directory, a mount nothing would ever remove.
//
// --nvproxy (GPUs) depends on the device nodes the spec ends up with: runscSpec adds it.
//
// The directfs default (true) is kept on purpose: with it the Sentry and the gofer run in the spec's
// user namespace, as the sandbox's own unprivileged host uid; without it the Sentry would run as the
// host's nobody (65534), one uid shared by every gVisor sandbox and by the host's own nobody.
func runscFlags(s backend.Spec) []string {
	flags := []string{"--platform=systrap", "--oci-seccomp", "--overlay2=none", "--gofer-network-namespace=new"}
	if s.Network {
		flags = append(flags, "--network=host")
	} else {
		flags = append(flags, "--network=sandbox")
	}
	return flags
}

// runscSpec adapts a sandbox's spec to runsc, after it is built and edited: the flags that depend on
// what the spec holds, and Docker's seccomp profile as gVisor reads it.
//
// gVisor answers every SCMP_ACT_ERRNO rule with EPERM, whatever its errnoRet. Docker's profile answers
// clone3 with ENOSYS (seccomp cannot read clone3's flags, which live in memory, so the caller must fall
// back to clone, whose flags it can check); glibc falls back on ENOSYS only, so with EPERM every
// pthread_create fails. Under runsc clone3 is therefore allowed: the namespaces it can ask for are the
// Sentry's own, never the host's, while unshare, setns, and clone with namespace flags stay refused.
func runscSpec(spec *specs.Spec, rt *ociRuntime) {
	if sc := spec.Linux.Seccomp; sc != nil {
		for i, r := range sc.Syscalls {
			if r.Action == specs.ActErrno && r.ErrnoRet != nil && *r.ErrnoRet == uint(unix.ENOSYS) && slices.Equal(r.Names, []string{"clone3"}) {
				sc.Syscalls[i] = specs.LinuxSyscall{Names: r.Names, Action: specs.ActAllow}
			}
		}
	}
	for _, d := range spec.Linux.Devices {
		if strings.HasPrefix(d.Path, "/dev/nvidia") {
			// GPUs: the Sentry passes the driver's ioctls through for these nodes (nvproxy). runsc
			// turns it on by itself when it sees them; said here so that it never depends on that.
			rt.Flags = append(rt.Flags, "--nvproxy")
			break
		}
	}
}

// What gVisor itself needs inside a sandbox's cgroup, added to the limits of every runsc sandbox, as
// Kubernetes adds a RuntimeClass's overhead to a pod's: the Sentry and the gofer are processes of the
// sandbox's cgroup, so without it a template's limits would count them against the tenant's workload
// (an idle Sentry and gofer hold about 25 MiB and 80 threads on a 2-core host, more threads with more
// cores). The application's memory and processes still stop at the limit plus this much, never more.
const (
	runscMemoryOverhead = 64 << 20
	runscPidsOverhead   = 256
)

// runscLimits are the cgroup limits of a runsc sandbox whose template says l.
func runscLimits(l backend.Limits) backend.Limits {
	if l.MemoryBytes > 0 {
		l.MemoryBytes += runscMemoryOverhead
	}
	if l.Pids > 0 {
		l.Pids += runscPidsOverhead
	}
	return l
}

// loopbackNetns prepares the network of a runsc sandbox without network. runsc's netstack copies the
// interfaces of the namespace the Sentry starts in and skips those that are down, so a brand-new
// namespace (its loopback down) would leave the sandbox without even 127.0.0.1. This puts a thread of
// the caller in a new network namespace, brings its loopback up, and points the spec at it; release puts
// the thread back once runsc has joined the namespace (runsc create has returned). Nothing is mounted:
// the namespace lives as long as a process is in it.
func loopbackNetns(spec *specs.Spec) (release func(), err error) {
	i := -1
	for j, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace && ns.Path == "" {
			i = j
		}
	}
	if i < 0 {
		return func() {}, nil // the host's network
	}
	ready, done := make(chan error, 1), make(chan struct{})
	go func() {
		runtime.LockOSThread()
		host, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ready <- err
			return
		}
		defer host.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ready <- fmt.Errorf("new network namespace: %w", err)
			return
		}
		spec.Linux.Namespaces[i].Path = fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		ready <- loopbackUp()
		<-done
		// Only a thread back in the host's namespace may run other goroutines; if the way back fails,
		// it stays locked and the Go runtime discards it when this goroutine ends.
		if unix.Setns(int(host.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
	}()
	if err := <-ready; err != nil {
		close(done)
		return nil, err
	}
	return func() { close(done) }, nil
}

// runscNetwork gives the spec in dir a network namespace with its loopback up (loopbackNetns) for
// runsc create; release once it has returned.
func runscNetwork(dir string) (release func(), err error) {
	var spec specs.Spec
	if err := readJSON(filepath.Join(dir, fileConfig), &spec); err != nil {
		return nil, err
	}
	if release, err = loopbackNetns(&spec); err != nil {
		return nil, err
	}
	if err := writeJSON(filepath.Join(dir, fileConfig), &spec); err != nil {
		release()
		return nil, err
	}
	return release, nil
}

// loopbackUp sets the calling thread's loopback interface up (`ip link set lo up`).
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	return nil
}

// CheckRunsc verifies that Options.Runsc is a runsc that can run this backend's sandboxes: it runs, it
// has the systrap platform (gVisor since 2023) and nvproxy can list the NVIDIA drivers it supports. The
// Debian package (2022) fails here. Check (runc) does not call it: a pool on runc works without runsc.
// Errors wrap backend.ErrUnavailable and say how to fix them.
func (b *Backend) CheckRunsc(ctx context.Context) error {
	fix := "build the pinned one with infra/gvisor/build.sh (Debian's runsc package is too old)"
	if b.opts.Runsc == "" {
		return fmt.Errorf("%w: runsc is not configured: %s and start serve with --runsc=<path> (TAMARACK_RUNSC)", backend.ErrUnavailable, fix)
	}
	if !executable(b.opts.Runsc) {
		return fmt.Errorf("%w: runsc %q is not an executable file: %s", backend.ErrUnavailable, b.opts.Runsc, fix)
	}
	out, err := exec.CommandContext(ctx, b.opts.Runsc, "flags").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "systrap") || !strings.Contains(string(out), "oci-seccomp") {
		return fmt.Errorf("%w: %s has no systrap platform or no --oci-seccomp (%v): %s", backend.ErrUnavailable, b.opts.Runsc, err, fix)
	}
	if out, err := exec.CommandContext(ctx, b.opts.Runsc, "nvproxy", "list-supported-drivers").CombinedOutput(); err != nil {
		return fmt.Errorf("%w: %s has no nvproxy (GPU support): %v: %s: %s", backend.ErrUnavailable, b.opts.Runsc, err, lastOf(string(out)), fix)
	}
	return nil
}

// killTerminal ends a runsc terminal's process group inside the sandbox. Under gVisor the process runc
// would have left on the host does not exist: the terminal's processes are tasks of the Sentry, and the
// host process whose PID runsc writes is its `runsc exec` waiter, outside the sandbox. Closing the PTY
// does not hang the shell up either (the Sentry holds the host terminal's other end), so the group is
// killed through the runtime, by its sandbox-internal PID (the exec'd process leads its own session and
// group).
func killTerminal(rt ociRuntime, id string, internalPID int) {
	if internalPID <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = rt.command(ctx, "kill", "--pgid", strconv.Itoa(internalPID), id, "KILL").Run()
}

// dialRunsc connects to 127.0.0.1:port inside a runsc sandbox with `runsc port-forward --stream`:
// runsc connects to a socket of ours and hands that connection to the Sentry, which connects it to
// the port on the sandbox's own network stack (netstack's loopback, which no host namespace can reach)
// and copies both ways; runsc then exits. Nothing runs inside the sandbox.
func dialRunsc(ctx context.Context, rt ociRuntime, id string, port int) (net.Conn, error) {
	// A private directory: nobody else may connect in between, and sun_path holds 108 bytes.
	tmp, err := os.MkdirTemp("", "tamarack-port-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp) // the connection outlives the socket's name
	sock := filepath.Join(tmp, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	cmd := rt.command(ctx, "port-forward", "--stream", sock, id, strconv.Itoa(port))
	var errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &errOut, &errOut
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	type accepted struct {
		c   net.Conn
		err error
	}
	got := make(chan accepted, 1)
	go func() {
		c, err := ln.AcceptUnix()
		got <- accepted{c, err}
	}()
	// runsc connects first and asks the Sentry to forward second: the connection is only good once
	// runsc has exited successfully (a port nobody listens on makes it fail).
	var conn net.Conn
	select {
	case a := <-got:
		if a.err != nil {
			_ = cmd.Process.Kill()
			<-exited
			return nil, a.err
		}
		conn, err = a.c, <-exited
	case err = <-exited:
		if err == nil {
			// It connected before it exited: the connection waits in the listener's backlog.
			select {
			case a := <-got:
				conn, err = a.c, a.err
			case <-time.After(5 * time.Second):
				err = errors.New("exited without connecting")
			}
		}
	}
	if err != nil {
		ln.Close()
		if conn != nil {
			conn.Close()
		}
		if msg := lastOf(errOut.String()); msg != "" {
			err = fmt.Errorf("%w: %s", err, msg)
		}
		return nil, fmt.Errorf("runsc port-forward: %w", err)
	}
	return conn, nil
}
