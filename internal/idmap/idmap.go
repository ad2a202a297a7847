// Package idmap makes idmapped mounts: a view of a directory in which every
// file's owner is shifted into a sandbox's uid range. The runc backend uses
// it to give each sandbox the shared image, read-only, owned by the sandbox's
// own unprivileged root, without copying or chowning the image.
package idmap

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// UserNS returns an open file of a new user namespace in which ids 0..size-1
// map to host ids base..base+size-1, for uids and gids alike. The caller
// closes it. The namespace lives as long as the file is open.
//
// A user namespace needs a process to create it. Go's own way to start one
// in a new namespace (SysProcAttr.Cloneflags) has to fork the whole caller,
// copying its page tables, where a plain start only vforks: in a daemon with
// a large heap, the fork took ~10 ms of CPU per sandbox. So a plain start
// runs util-linux's unshare, which makes the namespace and becomes cat; cat
// echoing a byte back shows the namespace is made, and this process then
// writes its mappings (as root of the parent namespace, it may map any ids).
// cat exits when its stdin closes, even if we crash.
func UserNS(base, size uint32) (*os.File, error) {
	cmd := exec.Command("unshare", "--user", "cat")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start user namespace holder (util-linux's unshare): %w", err)
	}
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	if _, err := stdin.Write([]byte{'\n'}); err != nil {
		return nil, fmt.Errorf("user namespace holder: %w", err)
	}
	if _, err := io.ReadFull(stdout, make([]byte, 1)); err != nil {
		return nil, fmt.Errorf("user namespace holder did not start: %w", err)
	}
	pid := cmd.Process.Pid
	m := fmt.Sprintf("0 %d %d\n", base, size)
	for _, f := range []string{"uid_map", "gid_map"} {
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/%s", pid, f), []byte(m), 0); err != nil {
			return nil, fmt.Errorf("user namespace: %s: %w", f, err)
		}
	}
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", pid))
	if err != nil {
		return nil, fmt.Errorf("open user namespace: %w", err)
	}
	return ns, nil
}

// BindReadOnly mounts src at target as a read-only bind mount whose file
// owners are mapped through userns (a file from UserNS): a file owned by uid
// N on disk appears owned by the host uid that N maps to.
func BindReadOnly(src, target string, userns *os.File) error {
	fd, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("open_tree %s: %w", src, err)
	}
	defer unix.Close(fd)
	attr := &unix.MountAttr{
		Attr_set:  unix.MOUNT_ATTR_IDMAP | unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV,
		Userns_fd: uint64(userns.Fd()),
	}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, attr); err != nil {
		return fmt.Errorf("idmap %s: %w", src, err)
	}
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount %s: %w", target, err)
	}
	return nil
}
