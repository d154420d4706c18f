// Package kubernetes is the testbed's Kubernetes backend: it runs each sandbox as one Pod in the pool's
// namespace, from the site agent (`tamarack agent run --backend kubernetes`) inside or beside the cluster,
// through client-go. The platform never connects into the cluster.
//
// A sandbox is a Pod named for it (label tamarack.ai/sandbox=<id>) from the template's image, asking for its
// GPUs as `nvidia.com/gpu` limits on a node whose `nvidia.com/gpu.product` label (NVIDIA's GPU feature
// discovery) is the model's, with a restrictive security context (non-root, RuntimeDefault seccomp, no
// privilege escalation, no capabilities, read-only root with a writable home), an ephemeral-storage limit,
// activeDeadlineSeconds from the booked time plus a grace, the pool's RuntimeClass (gVisor, Kata), and a
// NetworkPolicy of its own that denies ingress always and egress unless the template asks for network.
// Terminals, logs and ports go through the API server's pods/exec, pods/log and pods/portforward. Usage is
// the Pod's start and end as the API server reports them.
//
// Beside each Pod the backend keeps a record, a ConfigMap of the same name and label, created before the
// Pod: the sandbox's final status once it has ended (and the tail of its output once its Pod is deleted),
// so that a stopped sandbox stays readable until Remove, and a Pod that vanished without an end recorded
// (its node lost, deleted by someone else) is reported lost. List is rebuilt from the API server each time;
// nothing of the backend's state lives only in this process.
//
// It owns the Pods, NetworkPolicies and ConfigMaps labelled tamarack.ai/sandbox in its namespace. It must
// not place sandboxes on nodes or pick GPUs: the scheduler and the device plugin do.
package kubernetes
