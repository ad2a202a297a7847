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
//	sandboxes/<id>/        config.json, rootfs/ (the overlay), upper/, work/,
//	                       agent.sock, agent.log, init.pid
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
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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
	Agent  string
	Logger *slog.Logger
}

// Runtime drives runc.
type Runtime struct {
	dir, runcBin, agent string
	log                 *slog.Logger
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
	r := &Runtime{dir: cfg.Dir, runcBin: bin, log: cfg.Logger}
	// Container root must be able to reach its rootfs and the agent binary,
	// so directories on the way are searchable (0711) but not listable.
	for _, d := range []string{cfg.Dir, r.path("state"), r.path("bin"), r.path("sandboxes")} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, err
		}
		if err := os.Chmod(d, 0o711); err != nil {
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
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("agent binary: %w", err)
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".agent-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

func (r *Runtime) path(elem ...string) string {
	return filepath.Join(append([]string{r.dir}, elem...)...)
}

func (r *Runtime) sandboxDir(id string) string { return r.path("sandboxes", id) }

// Start implements runtime.Runtime.
func (r *Runtime) Start(ctx context.Context, s runtime.Spec) (inst *runtime.Instance, err error) {
	if s.ID == "" || strings.ContainsAny(s.ID, "/.") {
		return nil, fmt.Errorf("%w: sandbox id %q", errdefs.ErrInvalidArgument, s.ID)
	}
	if s.UIDBase < runtime.IDMapSize {
		return nil, fmt.Errorf("%w: uid base %d overlaps host users", errdefs.ErrInvalidArgument, s.UIDBase)
	}
	if fi, err := os.Stat(s.Image); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%w: image %s is not a directory", errdefs.ErrInvalidArgument, s.Image)
	}
	dir := r.sandboxDir(s.ID)
	upper, work, rootfs, lower := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "rootfs"), filepath.Join(dir, "lower")
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, err
	}
	for _, d := range []string{work, rootfs, lower} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	_ = os.Chmod(rootfs, 0o755)
	if _, err := os.Stat(upper); errors.Is(err, os.ErrNotExist) {
		if err := prepareUpper(upper, s.ID, int(s.UIDBase)); err != nil {
			return nil, fmt.Errorf("prepare upper layer: %w", err)
		}
	}
	if r.running(s.ID) {
		return nil, fmt.Errorf("%w: sandbox %s is already running", errdefs.ErrConflict, s.ID)
	}
	// Leftovers of a run that did not stop cleanly go first.
	if err := r.Stop(ctx, s.ID); err != nil {
		return nil, err
	}
	if err := mountRootfs(s.Image, lower, upper, work, rootfs, s.UIDBase, runtime.IDMapSize); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = r.Stop(context.WithoutCancel(ctx), s.ID)
		}
	}()
	spec, err := buildSpec(s, r.agent)
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
	logf, err := os.OpenFile(filepath.Join(dir, "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	logStart, _ := logf.Seek(0, io.SeekEnd)

	pidFile := filepath.Join(dir, "init.pid")
	cmd := exec.CommandContext(ctx, r.runcBin, "--root", r.path("state"), "run", "--detach",
		"--bundle", dir, "--pid-file", pidFile, "--preserve-fds", "1", s.ID)
	cmd.Stdout, cmd.Stderr = logf, logf // runc's errors and then the agent's log
	cmd.ExtraFiles = []*os.File{ln}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	started := time.Now()
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("runc run %s: %w: %s", s.ID, err, tail(logf.Name(), logStart))
	}
	pid, err := readPid(pidFile)
	if err != nil {
		return nil, err
	}
	return &runtime.Instance{ID: s.ID, Socket: sock, Pid: pid, StartedAt: started}, nil
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
	st, err := r.state(ctx, id)
	if err == nil && st.Status == "running" && st.Pid > 0 {
		sock := filepath.Join(r.sandboxDir(id), "agent.sock")
		if _, err := os.Stat(sock); err == nil {
			return &runtime.Instance{ID: id, Socket: sock, Pid: st.Pid, StartedAt: st.Created}, nil
		}
	}
	if err := r.Stop(ctx, id); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("%w: no running container for %s", errdefs.ErrNotFound, id)
}

type runcState struct {
	Status  string    `json:"status"`
	Pid     int       `json:"pid"`
	Created time.Time `json:"created"`
}

func (r *Runtime) state(ctx context.Context, id string) (*runcState, error) {
	out, err := r.runc(ctx, "state", id)
	if err != nil {
		return nil, err
	}
	var st runcState
	if err := json.Unmarshal(out, &st); err != nil {
		return nil, fmt.Errorf("runc state %s: %w", id, err)
	}
	return &st, nil
}

// Stop implements runtime.Runtime. It kills the container's init directly
// and waits for it through a pidfd (runc delete --force would poll), then
// lets runc remove its state and cgroups, then unmounts the rootfs.
func (r *Runtime) Stop(ctx context.Context, id string) error {
	dir := r.sandboxDir(id)
	if _, err := os.Stat(filepath.Join(r.path("state"), id)); err == nil {
		if pid, err := readPid(filepath.Join(dir, "init.pid")); err == nil {
			killAndWait(ctx, pid, id)
		}
		if _, err := r.runc(ctx, "delete", id); err != nil {
			if _, err := r.runc(ctx, "delete", "--force", id); err != nil {
				return fmt.Errorf("stop %s: %w", id, err)
			}
		}
	}
	if err := unmount(filepath.Join(dir, "rootfs")); err != nil {
		return fmt.Errorf("stop %s: %w", id, err)
	}
	if err := unmount(filepath.Join(dir, "lower")); err != nil {
		return fmt.Errorf("stop %s: %w", id, err)
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
	pid, err := readPid(filepath.Join(r.sandboxDir(id), "init.pid"))
	return err == nil && isInit(pid, id)
}

// isInit tells whether pid is a process in the cgroup of container id (the
// pid file may be stale and its pid reused).
func isInit(pid int, id string) bool {
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	return err == nil && bytes.Contains(cg, []byte("/sandboxd/"+id+"\n"))
}

// killAndWait sends SIGKILL to pid if it is still the init of container id,
// and waits for it to exit. Killing a pid namespace's init kills the rest.
func killAndWait(ctx context.Context, pid int, id string) {
	pfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return // already gone
	}
	defer unix.Close(pfd)
	if !isInit(pid, id) {
		return
	}
	if err := unix.PidfdSendSignal(pfd, unix.SIGKILL, nil, 0); err != nil {
		return
	}
	deadline := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		deadline = time.Until(d)
	}
	fds := []unix.PollFd{{Fd: int32(pfd), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, int(deadline.Milliseconds()))
		if err != unix.EINTR {
			return
		}
	}
}

// Destroy implements runtime.Runtime.
func (r *Runtime) Destroy(ctx context.Context, id string) error {
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

func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// tail returns what was appended to a log file since offset, at most 4 KiB.
func tail(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if end, err := f.Seek(0, io.SeekEnd); err == nil && end-offset > 4096 {
		offset = end - 4096
	}
	b, _ := io.ReadAll(io.NewSectionReader(f, offset, 4096))
	return strings.TrimSpace(string(b))
}
