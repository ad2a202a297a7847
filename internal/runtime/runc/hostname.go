package runc

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	goruntime "runtime"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/internal/errdefs"
	"github.com/sandboxd/sandboxd/internal/runtime"
)

var _ runtime.HostnameSetter = (*Runtime)(nil)

// hostnamePattern is a hostname Start and SetHostname accept: one DNS
// label, or the dotted name of a pooled container.
var hostnamePattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$`)

func checkHostname(h string) error {
	if !hostnamePattern.MatchString(h) {
		return fmt.Errorf("%w: hostname %q", errdefs.ErrInvalidArgument, h)
	}
	return nil
}

// hostFiles are the files of a sandbox's upper layer that name its host.
func hostFiles(hostname string) map[string]string {
	return map[string]string{
		"etc/hostname": hostname + "\n",
		"etc/hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
			"127.0.1.1\t" + hostname + "\n",
	}
}

// SetHostname implements runtime.HostnameSetter. The container has no
// CAP_SYS_ADMIN, so its hostname is set from the host: a goroutine locked
// to a fresh OS thread joins the container's UTS namespace (setns through
// a pidfd of its init, so a reused pid cannot redirect it) and calls
// sethostname; the thread never leaves that namespace and is discarded
// when the goroutine returns locked. The files are rewritten in place
// through the sandbox's root filesystem, resolved inside it and without
// following symlinks.
func (r *Runtime) SetHostname(ctx context.Context, id, hostname string) error {
	if err := checkID(id); err != nil {
		return err
	}
	if err := checkHostname(hostname); err != nil {
		return err
	}
	pid, err := readPid(filepath.Join(r.sandboxDir(id), "init.pid"))
	if err != nil {
		return fmt.Errorf("%w: set hostname of %s: not running: %v", errdefs.ErrNotFound, id, err)
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("%w: set hostname of %s: not running: %v", errdefs.ErrNotFound, id, err)
	}
	defer unix.Close(pidfd)
	if exitedNow(pidfd) || !inCgroup(pid, r.cgroup(id)) {
		return fmt.Errorf("%w: set hostname of %s: not running", errdefs.ErrNotFound, id)
	}
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		// No UnlockOSThread: the thread is in the container's UTS
		// namespace now, and must end with this goroutine.
		if err := unix.Setns(pidfd, unix.CLONE_NEWUTS); err != nil {
			errc <- fmt.Errorf("setns uts: %w", err)
			return
		}
		if err := unix.Sethostname([]byte(hostname)); err != nil {
			errc <- fmt.Errorf("sethostname: %w", err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		return fmt.Errorf("set hostname of %s: %w", id, err)
	}
	root, err := os.Open(filepath.Join(r.sandboxDir(id), "rootfs"))
	if err != nil {
		return fmt.Errorf("set hostname of %s: %w", id, err)
	}
	defer root.Close()
	for name, content := range hostFiles(hostname) {
		if err := rewriteIn(root, name, content); err != nil {
			return fmt.Errorf("set hostname of %s: %w", id, err)
		}
	}
	r.trackedHost(id, hostname)
	return nil
}

// rewriteIn replaces the content of the existing file name below root,
// in place (same inode), resolving name inside root without symlinks.
func rewriteIn(root *os.File, name, content string) error {
	fd, err := unix.Openat2(int(root.Fd()), name, &unix.OpenHow{
		Flags:   unix.O_WRONLY | unix.O_TRUNC | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	})
	if err != nil {
		return fmt.Errorf("open %s: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	_, err = f.WriteString(content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}
