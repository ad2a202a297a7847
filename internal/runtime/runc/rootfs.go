package runc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/internal/idmap"
	"github.com/sandboxd/sandboxd/internal/runtime"
)

// prepareUpper creates a new sandbox's writable layer, owned by the
// sandbox's root, with the files naming its host (hostFiles).
func prepareUpper(upper, hostname string, uid int) error {
	if err := os.Mkdir(upper, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	if err := os.Chown(upper, uid, uid); err != nil {
		return err
	}
	return writeUpper(upper, hostFiles(hostname), uid)
}

// writeUpper writes files (by name below upper, in etc/) into a sandbox's
// upper layer while the overlay is not mounted, owned by the sandbox's
// root, replacing what the sandbox left there. The upper layer belongs to
// the sandbox, so every step stays inside it (os.Root): a symlink there
// cannot make the daemon write a host file.
func writeUpper(upper string, files map[string]string, uid int) error {
	root, err := os.OpenRoot(upper)
	if err != nil {
		return err
	}
	defer root.Close()
	if err := root.Mkdir("etc", 0o755); err == nil {
		_ = root.Lchown("etc", uid, uid)
	} else if !errors.Is(err, os.ErrExist) {
		return err
	}
	for name, content := range files {
		if err := root.RemoveAll(name); err != nil {
			return err
		}
		if err := root.WriteFile(name, []byte(content), 0o644); err != nil {
			return err
		}
		if err := root.Lchown(name, uid, uid); err != nil {
			return err
		}
	}
	return nil
}

// mountRootfs mounts the sandbox's root filesystem at rootfs: an overlay
// whose lower layer is the image seen through an idmapped mount (owned by
// the sandbox's root, read-only) and whose upper layer is the sandbox's own.
// Afterwards only the overlay is in the mount table: the idmapped mount is
// detached once the overlay holds it.
func (r *Runtime) mountRootfs(ctx context.Context, image, lower, upper, work, rootfs string, uidBase uint32, trace *runtime.StartTrace) error {
	ns, err := r.userNS(ctx, uidBase)
	if err != nil {
		return err
	}
	if err := idmap.BindReadOnly(image, lower, ns); err != nil {
		return err
	}
	defer unix.Unmount(lower, unix.MNT_DETACH)
	trace.Mark("idmap")
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work)
	if err := unix.Mount("overlay", rootfs, "overlay", unix.MS_NODEV|unix.MS_NOSUID, opts); err != nil {
		return fmt.Errorf("mount overlay at %s: %w", rootfs, err)
	}
	return nil
}

// unmount unmounts every mount at or below path, deepest first. It returns
// nil if nothing is mounted there.
func unmount(path string) error {
	mounts, err := mountsUnder(path)
	if err != nil {
		return err
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		if err := unix.Unmount(mounts[i], 0); err != nil && !errors.Is(err, unix.EINVAL) {
			if err := unix.Unmount(mounts[i], unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("unmount %s: %w", mounts[i], err)
			}
		}
	}
	return nil
}

// mountsUnder lists the mount points at or below path, in mount order.
func mountsUnder(path string) ([]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMountPath(f[4])
		if mp == path || strings.HasPrefix(mp, path+"/") {
			out = append(out, mp)
		}
	}
	return out, nil
}

// unescapeMountPath undoes mountinfo's octal escapes: the kernel escapes
// space, tab, newline and backslash in mount points.
var unescapeMountPath = strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace

// maxUserNS bounds the user namespaces a Runtime keeps for idmapped mounts.
const maxUserNS = 1024

// userNS returns a user namespace mapping ids 0..IDMapSize-1 to host ids
// from base, for idmapped mounts. A uid range always maps the same way,
// so the namespace is made once per range and kept (an open file, and a
// little kernel memory): making one starts two processes (idmap.UserNS),
// 7-10 ms of a start's CPU on this kind of machine. Store hands out the
// lowest free ranges, so a few hundred cover the sandboxes of most hosts;
// past maxUserNS, one kept namespace is let go for each new one.
func (r *Runtime) userNS(ctx context.Context, base uint32) (*os.File, error) {
	r.mu.Lock()
	ns := r.userns[base]
	r.mu.Unlock()
	if ns != nil {
		return ns, nil
	}
	ns, err := idmap.UserNS(ctx, base, runtime.IDMapSize)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.userns[base]; old != nil { // made meanwhile by another start
		ns.Close()
		return old, nil
	}
	if len(r.userns) >= maxUserNS {
		// Not closed: a start may be using it this moment. The
		// garbage collector closes the file once none is
		// (idmap.BindReadOnly keeps it alive while it needs it).
		for b := range r.userns {
			delete(r.userns, b)
			break
		}
	}
	r.userns[base] = ns
	return ns, nil
}
