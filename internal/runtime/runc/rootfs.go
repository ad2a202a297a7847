package runc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/internal/idmap"
)

// prepareUpper creates a new sandbox's writable layer, owned by the
// sandbox's root, with the files each sandbox gets of its own: /etc/hosts,
// /etc/hostname and /etc/resolv.conf (the host's resolv.conf would make
// lookups stall for seconds in an isolated network namespace).
func prepareUpper(upper, hostname string, uid int) error {
	files := hostFiles(hostname)
	// Network mode none: no resolver; fail fast instead of waiting.
	files["etc/resolv.conf"] = "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"
	for _, d := range []string{"", "etc"} {
		p := filepath.Join(upper, d)
		if err := os.Mkdir(p, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		if err := os.Chown(p, uid, uid); err != nil {
			return err
		}
	}
	for name, content := range files {
		p := filepath.Join(upper, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
		if err := os.Chown(p, uid, uid); err != nil {
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
func mountRootfs(image, lower, upper, work, rootfs string, uidBase, size uint32) error {
	ns, err := idmap.UserNS(uidBase, size)
	if err != nil {
		return err
	}
	defer ns.Close()
	if err := idmap.BindReadOnly(image, lower, ns); err != nil {
		return err
	}
	defer unix.Unmount(lower, unix.MNT_DETACH)
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

// unescapeMountPath undoes mountinfo's octal escapes (\040 for space...).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + byte(c-'0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
