// Package runtime defines the seam between the daemon and whatever runs a
// sandbox's container. A Runtime turns a Spec into a running container whose
// init process is sandbox-agent, serving on a Unix socket on the host; every
// later operation on the sandbox goes through that agent, never through the
// runtime.
//
// Lifecycle of one sandbox ID:
//
//	Start  -> running: the container is up and its agent accepts connections.
//	Stop   -> stopped: no container and no mounts; the sandbox's files stay.
//	Start  -> running again, over the same files.
//	Destroy-> gone: nothing of the sandbox remains on disk or in the mount
//	          table. Destroy is idempotent and may be called in any state.
//
// Inside, the container's init is in cgroup, pid, mount and user namespaces
// of its own. Where the host has cgroup v2, its cgroup is delegated: it is
// the root of the container's cgroup namespace, mounted read-write at
// /sys/fs/cgroup, and root in the container may create child cgroups, move
// its processes among them and write their cgroup.kill, but not change the
// container's limits nor see any cgroup outside its own subtree (so the
// agent can run each command in a cgroup of its own). The init may move
// itself into a child cgroup; Stop and Destroy remove the whole subtree.
//
// A Runtime may be asked about a sandbox it started in an earlier daemon run
// (Attach); it must not keep state that a daemon restart would lose.
//
// Implementations: package runtime/runc. Every implementation passes the
// shared suite in runtime/runtimetest.
package runtime

import (
	"context"
	"time"
)

// Spec is what a Runtime needs to start one sandbox.
type Spec struct {
	// ID names the container to the runtime (the sandbox's runtime
	// name, which every other method takes too): [a-z0-9.-], at most 63
	// bytes. It is the sandbox ID unless the container was started for the
	// warm pool before any ID claimed it.
	ID string
	// Hostname is the container's hostname, in /etc/hostname and
	// /etc/hosts too (default: ID).
	Hostname string
	// Image is the root filesystem directory used, read-only, as the lower
	// layer of the sandbox's root filesystem.
	Image string
	// Env is set in the agent's environment, on top of the defaults (PATH,
	// HOME, LANG); processes the agent starts inherit it.
	Env map[string]string
	// Cwd is the agent's working directory (default /workspace).
	Cwd string
	// Resources are the cgroup limits; zero fields get the defaults.
	Resources Resources
	// UIDBase is the first host uid (and gid) of the sandbox's user
	// namespace: container uid 0 maps to it, IDMapSize ids in all.
	// Each sandbox should get its own range.
	UIDBase uint32
	// Network is the sandbox's network mode: NetworkNone (or empty) for
	// loopback only, NetworkBridge for a veth on the runtime's bridge with
	// NAT to the host's uplink. A bridge sandbox's address derives from
	// UIDBase (UIDBase/IDMapSize), so distinct uid ranges never share one.
	Network string
}

// Network modes of a Spec (the same strings as on the wire).
const (
	NetworkNone   = "none"
	NetworkBridge = "bridge"
)

// IDMapSize is the number of uids and gids mapped into each sandbox.
const IDMapSize = 65536

// Resources are cgroup limits.
type Resources struct {
	CPUs     float64 // CPU time, in CPUs' worth
	MemoryMB int64   // memory (and memory+swap) limit
	Pids     int64   // process (and thread) limit
	// DiskMB is the size of the sandbox's writable layer, fixed when its
	// files are first created (a later Start keeps the first size). Zero:
	// no quota, the layer shares the host's file system.
	DiskMB int64
}

// Default limits, for resources a Spec leaves zero.
const (
	DefaultCPUs     = 1.0
	DefaultMemoryMB = 1024
	DefaultPids     = 512
)

// MinDiskMB is the smallest disk quota: a file system needs room for its
// journal and metadata, and a sandbox for the few files each one gets.
const MinDiskMB = 16

// WithDefaults returns r with zero limits replaced by the defaults.
func (r Resources) WithDefaults() Resources {
	if r.CPUs <= 0 {
		r.CPUs = DefaultCPUs
	}
	if r.MemoryMB <= 0 {
		r.MemoryMB = DefaultMemoryMB
	}
	if r.Pids <= 0 {
		r.Pids = DefaultPids
	}
	return r
}

// Instance is a running container.
type Instance struct {
	ID string
	// Socket is the host path of the agent's Unix socket.
	Socket string
	// Pid is the host pid of the container's init (the agent).
	Pid int
	// StartedAt is when the container started.
	StartedAt time.Time
	// Exited is closed when the container's init exits, whatever the
	// cause (killed from outside, out of memory, Stop). After Stop or
	// Destroy, or when the runtime is closed, it may instead stay open
	// forever: callers also watch their own stop signal.
	Exited <-chan struct{}
}

// Runtime starts and stops sandboxes' containers. Methods are safe for
// concurrent use on different IDs; callers serialize calls for one ID.
type Runtime interface {
	// Start creates the sandbox's files if they do not exist yet, starts
	// its container and returns once the agent accepts connections on
	// Instance.Socket. Starting an ID that is already running is an error.
	Start(ctx context.Context, spec Spec) (*Instance, error)
	// Attach returns the running container of id left by an earlier
	// daemon run, or an error wrapping errdefs.ErrNotFound if there is
	// none (in which case leftovers are cleaned as by Stop).
	Attach(ctx context.Context, id string) (*Instance, error)
	// Stop kills the container and removes its mounts and cgroups, keeping
	// the sandbox's files. Stopping a stopped sandbox does nothing.
	Stop(ctx context.Context, id string) error
	// Destroy stops the sandbox and removes everything it had on disk.
	Destroy(ctx context.Context, id string) error
}

// Usage is what a running sandbox uses now.
type Usage struct {
	// CPU is the CPU time its processes have used since the container
	// started.
	CPU time.Duration
	// MemoryBytes is the memory charged to it (page cache included).
	MemoryBytes int64
	// Pids is the number of its processes and threads.
	Pids int64
	// DiskBytes is the space used on its disk quota's file system; 0 for
	// a sandbox without a quota (its files share the host's).
	DiskBytes int64
}

// UsageReader is an optional capability of a Runtime: reading what a
// running sandbox uses, from its cgroups and its disk. It must be cheap (a
// few small file reads): the daemon calls it for every running sandbox on
// each metrics scrape.
type UsageReader interface {
	// Usage returns what container id uses. A container that is not
	// running gives an error wrapping errdefs.ErrNotFound.
	Usage(ctx context.Context, id string) (Usage, error)
}
