// Package testutil holds helpers shared by the daemon's tests: tier guards
// (root, runc, the default image) and small fixtures.
package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/internal/agent/core"
	"golang.org/x/sys/unix"
)

// skipOrFail skips the test, except under CI (CI=true), where every tier
// must run, so a missing prerequisite fails instead.
func skipOrFail(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI must run this test, but: %s", why)
	}
	t.Skip(why)
}

// Requires skips the test unless ok, except under CI (CI=true), where it
// fails it: why names the missing prerequisite ("needs git"). It is for
// what the host lacks; a test left out on purpose (-short, a flag for
// long tests) skips with t.Skip.
func Requires(t testing.TB, ok bool, why string) {
	t.Helper()
	if !ok {
		skipOrFail(t, why)
	}
}

// RequiresRoot skips the test unless it runs as root with runc installed.
// With -short it always skips: that is the unit tier.
func RequiresRoot(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs root and runc; skipped with -short")
	}
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		skipOrFail(t, "needs runc (apt-get install runc)")
	}
}

// DefaultImage returns the default image directory (SANDBOXD_TEST_IMAGE, or
// /var/lib/sandboxd/images/default), skipping the test if it is not built.
func DefaultImage(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("SANDBOXD_TEST_IMAGE")
	if dir == "" {
		dir = "/var/lib/sandboxd/images/default"
	}
	if _, err := os.Stat(filepath.Join(dir, "usr/bin/python3")); err != nil {
		skipOrFail(t, "the default image is not built (make image): "+err.Error())
	}
	return dir
}

// TempDir returns a new directory that, unlike t.TempDir, other users may
// search (0711 up from /tmp), as a sandbox's unprivileged root must reach
// its root filesystem. It is removed when the test ends.
func TempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sandboxd-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// BusyboxImage returns a tiny root filesystem (busybox-static and its
// applets) for runtime tests that need no language runtimes. It is built
// once per test binary.
func BusyboxImage(t testing.TB) string {
	t.Helper()
	busyboxOnce.Do(func() { busyboxDir, busyboxErr = makeBusybox() })
	if busyboxErr != nil {
		skipOrFail(t, "busybox image: "+busyboxErr.Error()+" (apt-get install busybox-static)")
	}
	return busyboxDir
}

var (
	busyboxOnce sync.Once
	busyboxDir  string
	busyboxErr  error
)

func makeBusybox() (string, error) {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "sandboxd-busybox-")
	if err != nil {
		return "", err
	}
	for _, d := range []string{"bin", "etc", "tmp", "workspace", "root", "proc", "sys", "dev"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return "", err
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		return "", err
	}
	b, err := os.ReadFile(bb)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), b, 0o755); err != nil {
		return "", err
	}
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		return "", err
	}
	for _, name := range strings.Fields(string(out)) {
		if name != "busybox" {
			_ = os.Symlink("busybox", filepath.Join(dir, "bin", name))
		}
	}
	return dir, nil
}

// AgentBinary builds cmd/sandbox-agent (static) once per test binary and
// returns its path, or SANDBOXD_TEST_AGENT, an agent built beforehand (A/B
// benchmarks of agent changes).
func AgentBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("SANDBOXD_TEST_AGENT"); p != "" {
		return p
	}
	return Binary(t, "github.com/sandboxd/sandboxd/cmd/sandbox-agent", "CGO_ENABLED=0")
}

// Binary builds the main package pkg (with env added to the build's
// environment) once per test binary, into a temporary directory of its
// own, and returns its path. RemoveFixtures deletes it.
func Binary(t testing.TB, pkg string, env ...string) string {
	t.Helper()
	binsMu.Lock()
	b := bins[pkg]
	if b == nil {
		b = &builtBinary{}
		bins[pkg] = b
	}
	binsMu.Unlock()
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "sandboxd-"+path.Base(pkg)+"-")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, path.Base(pkg))
		cmd := exec.Command("go", "build", "-o", b.path, pkg)
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("build %s: %v: %s", pkg, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

type builtBinary struct {
	once sync.Once
	path string
	err  error
}

var (
	binsMu sync.Mutex
	bins   = map[string]*builtBinary{} // by package; guarded by binsMu
)

// RemoveFixtures deletes what BusyboxImage and Binary built; call it
// from TestMain after the tests ran.
func RemoveFixtures() {
	if busyboxDir != "" {
		os.RemoveAll(busyboxDir)
	}
	binsMu.Lock()
	defer binsMu.Unlock()
	for _, b := range bins {
		if b.path != "" {
			os.RemoveAll(filepath.Dir(b.path))
		}
	}
}

// CgroupRoot returns a new, empty cgroup v2 directory for an agent run by
// the test to make its groups in (agent.Config.CgroupRoot), or "" where
// there is none to be had (not root, no cgroup2 hierarchy): the agent then
// falls back to process groups. An agent given it moves its process, the
// test's, into a leaf of it; when the test ends the process moves back to
// where it was, whatever is left in the directory is killed, and it is
// removed.
func CgroupRoot(t testing.TB) string {
	t.Helper()
	mount := cgroup2Mount()
	if mount == "" {
		return ""
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	home, ok := "", false
	for _, line := range strings.Split(string(b), "\n") {
		if home, ok = strings.CutPrefix(line, "0::"); ok {
			break
		}
	}
	if err != nil || !ok {
		return ""
	}
	dir, err := os.MkdirTemp(mount, "sandboxd-test-")
	if err != nil {
		t.Logf("no test cgroup: %v", err)
		return ""
	}
	t.Cleanup(func() {
		self := []byte(strconv.Itoa(os.Getpid()))
		if err := os.WriteFile(filepath.Join(mount, home, "cgroup.procs"), self, 0); err != nil {
			t.Errorf("move the test back to its cgroup: %v", err)
		}
		removeCgroup(t, dir)
	})
	return dir
}

// cgroup2Mount returns where the cgroup v2 hierarchy is mounted, or "" if
// it is not, or this process may not write to it.
func cgroup2Mount() string {
	if os.Geteuid() != 0 {
		return ""
	}
	for _, m := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if unix.Statfs(m, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return m
		}
	}
	return ""
}

// RequiresCgroups skips the test (failing it under CI) unless CgroupRoot
// can give it a cgroup.
func RequiresCgroups(t testing.TB) {
	t.Helper()
	if cgroup2Mount() == "" {
		skipOrFail(t, "needs a writable cgroup v2 hierarchy (root)")
	}
}

// removeCgroup kills what is left in the cgroup dir and below, and
// removes them all, deepest first.
func removeCgroup(t testing.TB, dir string) {
	_ = os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		var err error
		for try := 0; try < 100; try++ { // the killed need a moment to go
			if err = unix.Rmdir(dirs[i]); err == nil || errors.Is(err, unix.ENOENT) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil && !errors.Is(err, unix.ENOENT) {
			t.Errorf("remove test cgroup %s: %v", dirs[i], err)
		}
	}
}

// Cgroups returns the groups of an agent part under test: in a new test
// cgroup (CgroupRoot), or process groups where there is none.
func Cgroups(t testing.TB) *core.Cgroups {
	t.Helper()
	root := CgroupRoot(t)
	if root == "" {
		return &core.Cgroups{}
	}
	cg, err := core.OpenCgroups(root, true)
	if err != nil {
		t.Fatal(err)
	}
	return cg
}
