package runc

import (
	"os"
	"path/filepath"
)

// Leftovers lists what of sandbox id remains on the host for a Runtime whose
// Config.Dir is dir: mounts, cgroups, runc state and files. After Destroy it
// must be empty; tests and operators use it to check.
func Leftovers(dir, id string) []string {
	var out []string
	sb := filepath.Join(dir, "sandboxes", id)
	if m, _ := mountsUnder(sb); len(m) > 0 {
		out = append(out, m...)
	}
	for _, p := range []string{sb, filepath.Join(dir, "state", id)} {
		if _, err := os.Lstat(p); err == nil {
			out = append(out, p)
		}
	}
	cgroups, _ := filepath.Glob("/sys/fs/cgroup/*/sandboxd/" + id)
	out = append(out, cgroups...)
	if _, err := os.Stat("/sys/fs/cgroup/sandboxd/" + id); err == nil {
		out = append(out, "/sys/fs/cgroup/sandboxd/"+id)
	}
	return out
}
