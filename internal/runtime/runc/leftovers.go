package runc

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"
)

// Leftovers lists what of sandbox id remains on the host for a Runtime whose
// Config.Dir is dir: mounts, loop devices, veths, cgroups (child cgroups
// included), runc state and files.
// After Destroy it must be empty; tests and operators use it to check.
func Leftovers(dir, id string) []string {
	dir, _ = filepath.Abs(dir)
	cg := CgroupPath(dir, id)
	var out []string
	sb := filepath.Join(dir, "sandboxes", id)
	if m, _ := mountsUnder(sb); len(m) > 0 {
		out = append(out, m...)
	}
	out = append(out, loopDevicesOf(sb)...)
	veth := vethName(dir, id)
	if _, err := netlink.LinkByName(veth); err == nil {
		out = append(out, "veth "+veth)
	}
	for _, p := range []string{sb, filepath.Join(dir, "state", id)} {
		if _, err := os.Lstat(p); err == nil {
			out = append(out, p)
		}
	}
	// The container's cgroup in every hierarchy (v1 ones, a hybrid host's
	// unified, a v2 host's), with the child cgroups a sandbox made.
	cgroups, _ := filepath.Glob("/sys/fs/cgroup/*" + cg)
	for _, p := range append(cgroups, "/sys/fs/cgroup"+cg) {
		out = append(out, cgroupTree(p)...)
	}
	return out
}

// CgroupPath is the cgroups path (below each hierarchy's root) of sandbox
// id's container for a Runtime whose Config.Dir is dir. A tag of dir keeps
// the cgroups of different data directories apart.
func CgroupPath(dir, id string) string {
	dir, _ = filepath.Abs(dir)
	sum := sha256.Sum256([]byte(dir))
	return "/sandboxd/" + hex.EncodeToString(sum[:4]) + "-" + id
}
