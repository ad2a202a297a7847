// Package idmap makes idmapped mounts: a view of a directory in which every
// file's owner is shifted into a sandbox's uid range. The runc backend uses
// it to give each sandbox the shared image, read-only, owned by the sandbox's
// own unprivileged root, without copying or chowning the image.
package idmap

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	goruntime "runtime"

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
// cat exits when its stdin closes: when we are done, or when we die. If ctx
// ends first, the holder is killed.
func UserNS(ctx context.Context, base, size uint32) (*os.File, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "unshare", "--user", "cat")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, &stderr
	err = cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, fmt.Errorf("start user namespace holder (util-linux's unshare): %w", err)
	}
	done := func() {
		inW.Close()
		outR.Close()
		_ = cmd.Wait()
	}
	fail := func(what string, err error) (*os.File, error) {
		done()
		return nil, fmt.Errorf("user namespace: %s: %w: %s", what, err, bytes.TrimSpace(stderr.Bytes()))
	}
	if _, err := inW.Write([]byte{'\n'}); err != nil {
		return fail("holder", err)
	}
	if _, err := io.ReadFull(outR, make([]byte, 1)); err != nil {
		return fail("holder did not start", err)
	}
	pid := cmd.Process.Pid
	m := fmt.Sprintf("0 %d %d\n", base, size)
	for _, f := range []string{"uid_map", "gid_map"} {
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/%s", pid, f), []byte(m), 0); err != nil {
			return fail(f, err)
		}
	}
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", pid))
	if err != nil {
		return fail("open", err)
	}
	done()
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
	err = unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, attr)
	goruntime.KeepAlive(userns) // its descriptor is in attr: not to be closed by a finalizer before this
	if err != nil {
		return fmt.Errorf("idmap %s: %w", src, err)
	}
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount %s: %w", target, err)
	}
	return nil
}
