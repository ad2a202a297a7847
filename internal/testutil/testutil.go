// Package testutil holds helpers shared by the daemon's tests: tier guards
// (root, runc, the default image) and small fixtures.
package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
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
// returns its path.
func AgentBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("SANDBOXD_TEST_AGENT"); p != "" {
		return p // a prebuilt agent: A/B benchmarks of agent changes
	}
	agentOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sandboxd-agent-")
		if err != nil {
			agentErr = err
			return
		}
		agentPath = filepath.Join(dir, "sandbox-agent")
		cmd := exec.Command("go", "build", "-o", agentPath, "github.com/sandboxd/sandboxd/cmd/sandbox-agent")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			agentErr = fmt.Errorf("build agent: %v: %s", err, out)
		}
	})
	if agentErr != nil {
		t.Fatal(agentErr)
	}
	return agentPath
}

var (
	agentOnce sync.Once
	agentPath string
	agentErr  error
)

// RemoveFixtures deletes what BusyboxImage and AgentBinary built; call it
// from TestMain after the tests ran.
func RemoveFixtures() {
	if busyboxDir != "" {
		os.RemoveAll(busyboxDir)
	}
	if agentPath != "" {
		os.RemoveAll(filepath.Dir(agentPath))
	}
}
