// Package runc is the default runtime backend: each sandbox is a runc
// container whose root filesystem is an overlay of the shared image (through
// an idmapped mount, read-only) and a per-sandbox writable layer, in its own
// user, pid, mount, network, ipc, uts and cgroup namespaces, under cgroup
// limits, Docker's default seccomp profile (tightened) and capability set.
//
// Layout under Config.Dir:
//
//	state/                 runc's --root
//	bin/sandbox-agent      a copy of the agent binary, bind-mounted read-only
//	disks/                 empty quota file systems, one per size, that new
//	                       sandboxes' disks are copied from (quota.go)
//	sandboxes/<id>/        config.json, rootfs/ (the overlay), upper/, work/,
//	                       agent.sock, runc.log, init.pid; with a disk
//	                       quota, disk.img mounted at disk/ holds upper/ and
//	                       work/ instead (quota.go); in network mode
//	                       bridge, netns and netns.sys/ (network*.go)
//
// The agent's socket is created by the daemon on the host and handed to the
// container as an inherited descriptor (runc --preserve-fds), so the agent
// is reachable the moment runc returns, and nothing of the host's file tree
// is mounted into the sandbox but the agent binary.
package runc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/internal/errdefs"
	"github.com/sandboxd/sandboxd/internal/runtime"
)

// Config configures the backend.
type Config struct {
	// Dir holds runc's state and every sandbox's files.
	Dir string
	// Runc is the runc binary (default "runc" from PATH).
	Runc string
	// Agent is the host path of the static sandbox-agent binary.
	Agent string
	// AgentArgs are added to every agent's command line (its limits:
	// agentapi.Limits.Args).
	AgentArgs []string
	// Bridge configures network mode bridge (see BridgeConfig).
	Bridge BridgeConfig
	Logger *slog.Logger
}

// Runtime drives runc.
type Runtime struct {
	dir, runcBin, agent string
	agentArgs           []string
	log                 *slog.Logger
	bridge              *bridgeNet

	mu      sync.Mutex
	tracked map[string]*tracked // running containers, by ID; guarded by mu
	userns  map[uint32]*os.File // user namespaces for idmapped mounts, by uid base (userNS); guarded by mu

	disksMu sync.Mutex // held while looking for or making a disk template (diskTemplate)
}

var _ runtime.Runtime = (*Runtime)(nil)

// New prepares Dir and copies the agent binary into it.
func New(cfg Config) (*Runtime, error) {
	if cfg.Runc == "" {
		cfg.Runc = "runc"
	}
	bin, err := exec.LookPath(cfg.Runc)
	if err != nil {
		return nil, fmt.Errorf("runc not found (apt-get install runc): %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	bridge, err := newBridgeNet(cfg.Bridge, cfg.Logger)
	if err != nil {
		return nil, err
	}
	r := &Runtime{dir: dir, runcBin: bin, agentArgs: cfg.AgentArgs, log: cfg.Logger, bridge: bridge, tracked: map[string]*tracked{}, userns: map[uint32]*os.File{}}
	// Every sandbox's root must reach its own rootfs and the agent binary,
	// so the directories on the way are searchable (0711) but not
	// listable; each sandbox's own directory is then closed to all but
	// root and that sandbox (see Start).
	for d, mode := range map[string]os.FileMode{dir: 0o711, r.path("bin"): 0o711, r.path("sandboxes"): 0o711, r.path("state"): 0o700} {
		if err := os.MkdirAll(d, mode); err != nil {
			return nil, err
		}
		if err := os.Chmod(d, mode); err != nil {
			return nil, err
		}
	}
	r.agent = r.path("bin", "sandbox-agent")
	if err := installAgent(cfg.Agent, r.agent); err != nil {
		return nil, err
	}
	return r, nil
}

// installAgent copies src to dst atomically, mode 0755.
func installAgent(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("agent binary: %w", err)
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil { // whatever the umask
		return err
	}
	return os.Rename(tmp, dst)
}

func (r *Runtime) path(elem ...string) string {
	return filepath.Join(append([]string{r.dir}, elem...)...)
}

func (r *Runtime) sandboxDir(id string) string { return r.path("sandboxes", id) }

// cgroup is the cgroups path of sandbox id's container.
func (r *Runtime) cgroup(id string) string { return CgroupPath(r.dir, id) }

// idPattern is a container's name: a sandbox ID ([a-z0-9-]), or a warm
// pool's name, which has a '.' so that no sandbox ID is ever one.
var idPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$`)

func checkID(id string) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("%w: sandbox id %q", errdefs.ErrInvalidArgument, id)
	}
	return nil
}

// Start implements runtime.Runtime.
func (r *Runtime) Start(ctx context.Context, s runtime.Spec) (inst *runtime.Instance, err error) {
	if err := checkID(s.ID); err != nil {
		return nil, err
	}
	if s.Hostname == "" {
		s.Hostname = s.ID
	}
	if err := checkHostname(s.Hostname); err != nil {
		return nil, err
	}
	if s.UIDBase < runtime.IDMapSize || uint64(s.UIDBase)+runtime.IDMapSize > 1<<32-1 {
		return nil, fmt.Errorf("%w: uid range %d+%d overlaps host users or overflows", errdefs.ErrInvalidArgument, s.UIDBase, runtime.IDMapSize)
	}
	if fi, err := os.Stat(s.Image); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%w: image %s is not a directory", errdefs.ErrInvalidArgument, s.Image)
	}
	resolv, err := r.checkNetwork(s)
	if err != nil {
		return nil, err
	}
	trace := runtime.TraceFrom(ctx)
	dir := r.sandboxDir(s.ID)
	// A sandbox seen for the first time (no directory, no runc state) has
	// no leftovers to look for: that costs reads of the mount table, which
	// grows with every sandbox running.
	_, errDir := os.Stat(dir)
	_, errState := os.Stat(filepath.Join(r.path("state"), s.ID))
	fresh := errors.Is(errDir, os.ErrNotExist) && errors.Is(errState, os.ErrNotExist)
	rootfs, lower := filepath.Join(dir, "rootfs"), filepath.Join(dir, "lower")
	for _, d := range []string{rootfs, lower} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	_ = os.Chmod(rootfs, 0o755)
	// Only root and this sandbox's root (by its group) may enter: the
	// upper layer below holds the sandbox's files, owned by its uids.
	if err := os.Chown(dir, 0, int(s.UIDBase)); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o710); err != nil {
		return nil, err
	}
	if !fresh {
		if r.running(s.ID) {
			return nil, fmt.Errorf("%w: sandbox %s is already running", errdefs.ErrConflict, s.ID)
		}
		// Leftovers of a run that did not stop cleanly go first.
		if err := r.Stop(ctx, s.ID); err != nil {
			return nil, err
		}
	}
	defer func() {
		if err != nil {
			_ = r.Stop(context.WithoutCancel(ctx), s.ID)
		}
	}()
	// The writable layer: on the sandbox's own quota file system (see
	// quota.go) or, without a quota, on the host's.
	trace.Mark("prepare")
	upper, work, err := r.prepareLayers(ctx, dir, s.Hostname, int(s.UIDBase), s.Resources.DiskMB)
	if err != nil {
		return nil, err
	}
	if err := writeUpper(upper, map[string]string{"etc/resolv.conf": resolv}, int(s.UIDBase)); err != nil {
		return nil, fmt.Errorf("resolv.conf: %w", err)
	}
	trace.Mark("disk")
	if err := r.mountRootfs(ctx, s.Image, lower, upper, work, rootfs, s.UIDBase, trace); err != nil {
		return nil, err
	}
	trace.Mark("overlay")
	netns, err := r.setupNetwork(s)
	if err != nil {
		return nil, err
	}
	trace.Mark("network")
	cg2 := cgroup2Dir(r.cgroup(s.ID))
	if cg2 != "" {
		if err := delegateCgroup(cg2, int(s.UIDBase)); err != nil {
			return nil, err
		}
	}
	spec, err := r.buildSpec(s, netns, cg2 != "")
	if err != nil {
		return nil, err
	}
	cfg, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o600); err != nil {
		return nil, err
	}

	sock := filepath.Join(dir, "agent.sock")
	ln, err := listenUnix(sock)
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	// The agent's output goes to a pipe the daemon reads into its log, not
	// to a host file a sandbox could fill. runc's own messages go to
	// runc.log, written by runc on the host side only.
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer outW.Close()
	runcLog := filepath.Join(dir, "runc.log")
	_ = os.Remove(runcLog)

	pidFile := filepath.Join(dir, "init.pid")
	cmd := exec.CommandContext(ctx, r.runcBin, "--root", r.path("state"), "--log", runcLog, "run", "--detach",
		"--bundle", dir, "--pid-file", pidFile, "--preserve-fds", "1", s.ID)
	cmd.Stdout, cmd.Stderr = outW, outW
	cmd.ExtraFiles = []*os.File{ln}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	trace.Mark("bundle")
	started := time.Now()
	if err := cmd.Run(); err != nil {
		outR.Close()
		return nil, fmt.Errorf("runc run %s: %w: %s", s.ID, err, tail(runcLog))
	}
	outW.Close()
	pid, err := readPid(pidFile)
	if err != nil {
		outR.Close()
		return nil, err
	}
	exited, err := r.track(s.ID, pid, outR)
	if err != nil {
		return nil, err
	}
	r.trackedHost(s.ID, s.Hostname)
	trace.Mark("runtime")
	if cpu, err := cpuUsage(r.cgroup(s.ID)); err == nil {
		trace.ContainerCPU("runtime", cpu) // runc's init, in the container's cgroup until it became the agent
	}
	return &runtime.Instance{ID: s.ID, Socket: sock, Pid: pid, StartedAt: started, Exited: exited}, nil
}

// listenUnix creates a listening Unix socket at path, readable by root only,
// and returns it as a file to hand to the container.
func listenUnix(path string) (*os.File, error) {
	_ = os.Remove(path)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("agent socket: %w", err)
	}
	l.SetUnlinkOnClose(false)
	defer l.Close()
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, err
	}
	return l.File()
}

// Attach implements runtime.Runtime.
func (r *Runtime) Attach(ctx context.Context, id string) (*runtime.Instance, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	var st struct {
		Status  string    `json:"status"`
		Pid     int       `json:"pid"`
		Created time.Time `json:"created"`
	}
	out, err := r.runc(ctx, "state", id)
	if err == nil {
		err = json.Unmarshal(out, &st)
	}
	if err == nil && st.Status == "running" && st.Pid > 0 {
		sock := filepath.Join(r.sandboxDir(id), "agent.sock")
		if _, err := os.Stat(sock); err == nil {
			if exited, err := r.track(id, st.Pid, nil); err == nil {
				r.reattachNetwork(id)
				return &runtime.Instance{ID: id, Socket: sock, Pid: st.Pid, StartedAt: st.Created, Exited: exited}, nil
			}
		}
	}
	if err := r.Stop(ctx, id); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("%w: no running container for %s", errdefs.ErrNotFound, id)
}

// Stop implements runtime.Runtime. It kills the container's init directly
// and waits for it through a pidfd (runc delete --force would poll), then
// lets runc remove its state and cgroups, removes what is left of its
// cgroup2 subtree, then the mounts (the overlay before the disk under it)
// and the network namespace.
func (r *Runtime) Stop(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	defer r.untrack(id)
	dir := r.sandboxDir(id)
	if _, err := os.Stat(filepath.Join(r.path("state"), id)); err == nil {
		if pid, err := readPid(filepath.Join(dir, "init.pid")); err == nil {
			killAndWait(ctx, pid, r.cgroup(id))
		}
		if _, err := r.runc(ctx, "delete", id); err != nil {
			if _, err := r.runc(ctx, "delete", "--force", id); err != nil {
				return fmt.Errorf("stop %s: %w", id, err)
			}
		}
	}
	// runc removes the cgroups it made, but not necessarily the child
	// cgroups the sandbox made in its delegated subtree, nor anything of a
	// container whose runc state is lost.
	for _, undo := range []func() error{
		func() error { return removeCgroup(ctx, cgroup2Dir(r.cgroup(id))) },
		func() error { return unmount(filepath.Join(dir, "rootfs")) },
		func() error { return unmount(filepath.Join(dir, "lower")) },
		func() error { return unmountDisk(dir) },
		func() error { return teardownNetns(r.netnsFile(id), vethName(r.dir, id)) },
	} {
		if err := undo(); err != nil {
			return fmt.Errorf("stop %s: %w", id, err)
		}
	}
	_ = os.Remove(filepath.Join(dir, "agent.sock"))
	_ = os.Remove(filepath.Join(dir, "init.pid"))
	return nil
}

// running tells whether the container of id has a live init.
func (r *Runtime) running(id string) bool {
	if _, err := os.Stat(filepath.Join(r.path("state"), id)); err != nil {
		return false
	}
	fd, err := r.initPidfd(id)
	if err == nil {
		unix.Close(fd)
	}
	return err == nil
}

// initPidfd returns a pidfd of the init of container id, or an error if it
// has none alive: the pid file is missing, or its process has exited (a
// zombie, dead but not yet reaped, still shows its cgroup) or is not in
// the container's cgroup (a stale pid file whose pid was reused).
func (r *Runtime) initPidfd(id string) (int, error) {
	pid, err := readPid(filepath.Join(r.sandboxDir(id), "init.pid"))
	if err != nil {
		return -1, err
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return -1, err
	}
	if exitedNow(fd) || !inCgroup(pid, r.cgroup(id)) {
		unix.Close(fd)
		return -1, fmt.Errorf("pid %d is not its init", pid)
	}
	return fd, nil
}

// inCgroup tells whether pid is a process in cgroup or in a cgroup below it
// (the pid file may be stale and its pid reused; the agent may have moved
// itself into a child of its delegated cgroup2 subtree).
func inCgroup(pid int, cgroup string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return false
	}
	// Lines are hierarchy-ID:controllers:path.
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) == 3 && (f[2] == cgroup || strings.HasPrefix(f[2], cgroup+"/")) {
			return true
		}
	}
	return false
}

// killAndWait sends SIGKILL to pid if it is still a process of cgroup, and
// waits (at most 10 s, or until ctx ends) for it to exit. Killing a pid
// namespace's init kills the rest.
func killAndWait(ctx context.Context, pid int, cgroup string) {
	pfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return // already gone
	}
	defer unix.Close(pfd)
	if !inCgroup(pid, cgroup) {
		return
	}
	if err := unix.PidfdSendSignal(pfd, unix.SIGKILL, nil, 0); err != nil {
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	fds := []unix.PollFd{{Fd: int32(pfd), Events: unix.POLLIN}}
	for {
		left := max(time.Until(deadline), 0)
		if _, err := unix.Poll(fds, int(left.Milliseconds())); err != unix.EINTR {
			return
		}
	}
}

// Destroy implements runtime.Runtime.
func (r *Runtime) Destroy(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	if err := r.Stop(ctx, id); err != nil {
		return err
	}
	dir := r.sandboxDir(id)
	// Never remove through a mount: that would delete what it shows.
	if m, err := mountsUnder(dir); err != nil || len(m) > 0 {
		return fmt.Errorf("destroy %s: still mounted: %v %v", id, m, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("destroy %s: %w", id, err)
	}
	return nil
}

func (r *Runtime) runc(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, r.runcBin, append([]string{"--root", r.path("state")}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("runc %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// onNewThread runs f on a goroutine locked to its OS thread, which is
// never given back to the scheduler (no UnlockOSThread): f may move the
// thread into another namespace, and the thread ends with the goroutine.
func onNewThread(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		errc <- f()
	}()
	return <-errc
}

func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// tail returns the end of a log file, at most 4 KiB.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b[max(len(b)-4096, 0):]))
}
