package runc

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/internal/errdefs"
	"github.com/sandboxd/sandboxd/internal/runtime"
)

var _ runtime.HostnameSetter = (*Runtime)(nil)

// checkHostname accepts what a container's name may be (idPattern): one
// DNS label, or the dotted name of a pooled container.
func checkHostname(h string) error {
	if !idPattern.MatchString(h) {
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
// CAP_SYS_ADMIN, so its hostname is set from the host: a thread of its own
// (onNewThread) joins the container's UTS namespace (setns through a pidfd
// of its init, so a reused pid cannot redirect it) and calls sethostname.
// The files are rewritten in place through the sandbox's root filesystem,
// resolved inside it and without following symlinks.
func (r *Runtime) SetHostname(ctx context.Context, id, hostname string) error {
	if err := checkID(id); err != nil {
		return err
	}
	if err := checkHostname(hostname); err != nil {
		return err
	}
	pidfd, err := r.initPidfd(id)
	if err != nil {
		return fmt.Errorf("%w: set hostname of %s: not running: %v", errdefs.ErrNotFound, id, err)
	}
	defer unix.Close(pidfd)
	err = onNewThread(func() error {
		if err := unix.Setns(pidfd, unix.CLONE_NEWUTS); err != nil {
			return fmt.Errorf("setns uts: %w", err)
		}
		if err := unix.Sethostname([]byte(hostname)); err != nil {
			return fmt.Errorf("sethostname: %w", err)
		}
		return nil
	})
	if err != nil {
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
