package e2e

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sandboxd/sandboxd/internal/testutil"
)

// TestCLI runs the built sandbox CLI against the daemon, as a user would.
func TestCLI(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	bin := buildCLI(t)
	cli := func(stdin string, args ...string) (string, string, int) {
		return runCLI(t, bin, d, "", stdin, args...)
	}

	out, stderr, code := cli("", "exec", "demo", "--", "python3", "-c", "import pandas; print(pandas.__version__)")
	if code != 0 || !regexp.MustCompile(`^\d+\.\d+\.\d+\n$`).MatchString(out) {
		t.Errorf("pandas version: %q %q exit %d", out, stderr, code)
	}
	if out, _, code := cli("", "exec", "demo", "--", "printf", `%s|\n`, "it's", "a b", "$HOME"); code != 0 || out != "it's|\na b|\n$HOME|\n" {
		t.Errorf("quoting: %q %d", out, code)
	}
	if out, _, code := cli("", "exec", "demo", "--", "sh", "-c", "echo its; exit 7"); code != 7 || out != "its\n" {
		t.Errorf("exit code: %q %d", out, code)
	}
	if out, _, _ := cli("x\ny\n", "exec", "--stdin", "demo", "--", "wc -l"); out != "2\n" {
		t.Errorf("stdin: %q", out)
	}
	if out, _, code := cli("", "ls"); code != 0 || !strings.Contains(out, "demo") || !strings.Contains(out, "running") {
		t.Errorf("ls: %q %d", out, code)
	}
	if out, _, code := cli("", "info", "demo"); code != 0 || !strings.Contains(out, `"id": "demo"`) {
		t.Errorf("info: %q %d", out, code)
	}
	if _, stderr, code := cli("", "info", "nope"); code != 1 || !strings.Contains(stderr, "SANDBOX_NOT_FOUND") {
		t.Errorf("info of unknown: %q %d", stderr, code)
	}
	// Background processes from the CLI.
	if out, stderr, code := cli("", "start", "demo", "--id", "ticker", "--", "sh", "-c", "echo tick; sleep 0.3; echo tock"); code != 0 || !strings.Contains(out, "ticker") {
		t.Errorf("start: %q %q %d", out, stderr, code)
	}
	if out, _, code := cli("", "logs", "demo", "ticker", "-f"); code != 0 || out != "tick\ntock\n" {
		t.Errorf("logs -f: %q %d", out, code)
	}
	if out, _, code := cli("", "ps", "demo"); code != 0 || !strings.Contains(out, "ticker") || !strings.Contains(out, "completed") {
		t.Errorf("ps: %q %d", out, code)
	}
	if _, _, code := cli("", "start", "demo", "--id", "sleeper", "--", "sleep", "100"); code != 0 {
		t.Errorf("start sleeper: %d", code)
	}
	if _, stderr, code := cli("", "kill", "demo", "sleeper"); code != 0 {
		t.Errorf("kill: %q %d", stderr, code)
	}
	if out, _, _ := cli("", "ps", "demo", "--status", "killed"); !strings.Contains(out, "sleeper") {
		t.Errorf("ps after kill: %q", out)
	}
	// Files: cp of a directory tree in and out (tar), cat, ls ID:PATH.
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "tree", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "tree", "a.txt"), []byte("alpha\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "tree", "sub", "b.bin"), []byte{0, 1, 2, 255}, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := cli("", "cp", filepath.Join(src, "tree"), "demo:/workspace/tree"); code != 0 {
		t.Fatalf("cp in: %q %d", stderr, code)
	}
	if out, _, code := cli("", "cat", "demo", "/workspace/tree/a.txt"); code != 0 || out != "alpha\n" {
		t.Errorf("cat: %q %d", out, code)
	}
	if out, _, code := cli("", "ls", "demo:/workspace/tree"); code != 0 || !strings.Contains(out, "a.txt") || !strings.Contains(out, "sub") {
		t.Errorf("ls ID:PATH: %q %d", out, code)
	}
	dst := filepath.Join(t.TempDir(), "back")
	if _, stderr, code := cli("", "cp", "demo:/workspace/tree", dst); code != 0 {
		t.Fatalf("cp out: %q %d", stderr, code)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "sub", "b.bin")); err != nil || string(b) != "\x00\x01\x02\xff" {
		t.Errorf("round trip of the tree: %q %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(dst, "sub", "b.bin")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("mode after the round trip: %v %v", fi, err)
	}
	if _, _, code := cli("", "rm", "demo"); code != 0 {
		t.Errorf("rm: exit %d", code)
	}
	if out, _, _ := cli("", "ls"); strings.Contains(out, "demo") {
		t.Errorf("ls after rm: %q", out)
	}
	cmd := exec.Command(bin, "ls")
	cmd.Env = append(os.Environ(), "SANDBOX_URL="+d.URL, "SANDBOX_TOKEN=wrong")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "UNAUTHORIZED") {
		t.Errorf("wrong token: %q %v", out, err)
	}
}

// buildCLI builds cmd/sandbox once per test binary and returns its path.
func buildCLI(t *testing.T) string {
	t.Helper()
	return testutil.Binary(t, "github.com/sandboxd/sandboxd/cmd/sandbox")
}

// runCLI runs the CLI bin against d, in dir (if not ""), with stdin, and
// returns its stdout, stderr and exit status.
func runCLI(t *testing.T, bin string, d *Daemon, dir, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "SANDBOX_URL="+d.URL, "SANDBOX_TOKEN="+d.Token)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}
