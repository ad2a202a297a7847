package policy

import (
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// TestPackagesHaveDocs fails for a package without a package comment.
func TestPackagesHaveDocs(t *testing.T) {
	root := repoRoot(t)
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "bin" || d.Name() == "testdata") && path != root {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			return nil
		}
		files, err := filepath.Glob(filepath.Join(path, "*.go"))
		if err != nil {
			return err
		}
		documented := map[string]bool{} // by package name
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ParseComments|parser.PackageClauseOnly)
			if err != nil {
				return err
			}
			name := af.Name.Name
			documented[name] = documented[name] || (af.Doc != nil && strings.TrimSpace(af.Doc.Text()) != "")
		}
		for name, ok := range documented {
			if !ok {
				rel, _ := filepath.Rel(root, path)
				t.Errorf("package %s (%s) has no package comment", name, rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func deps(t *testing.T, pkg string, env ...string) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-f", "{{if .Standard}}std:{{end}}{{.ImportPath}}", pkg)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

// TestAgentDeps: the agent runs in every sandbox; it stays small, static
// and free of the daemon's machinery.
func TestAgentDeps(t *testing.T) {
	forbidden := []string{"runtime/cgo", "database/sql", "modernc.org/", "github.com/prometheus/", "github.com/spf13/",
		"github.com/sandboxd/sandboxd/internal/manager", "github.com/sandboxd/sandboxd/internal/store",
		"github.com/sandboxd/sandboxd/internal/runtime", "github.com/sandboxd/sandboxd/internal/server"}
	// The only modules from outside the repository the agent may use, and
	// why.
	modules := []string{
		"golang.org/x/sys/", // system calls: reaping, signals, mounts, inotify
		// The web terminal (internal/agent/terminal): PTY allocation
		// (creack/pty, tiny, no dependencies) and the WebSocket the PTY's
		// bytes travel on (coder/websocket, no dependencies; the standard
		// library has no WebSocket server).
		"github.com/creack/pty", "github.com/coder/websocket",
	}
	for _, d := range deps(t, "github.com/sandboxd/sandboxd/cmd/sandbox-agent", "CGO_ENABLED=0") {
		p := strings.TrimPrefix(d, "std:")
		for _, f := range forbidden {
			if strings.HasPrefix(p, f) {
				t.Errorf("sandbox-agent imports %s", d)
			}
		}
		if strings.HasPrefix(d, "std:") || strings.HasPrefix(p, "github.com/sandboxd/sandboxd/") {
			continue
		}
		ok := false
		for _, m := range modules {
			ok = ok || p == strings.TrimSuffix(m, "/") || strings.HasPrefix(p, strings.TrimSuffix(m, "/")+"/")
		}
		if !ok {
			t.Errorf("sandbox-agent imports %s, which is not in the agent's pinned modules", d)
		}
	}
}

// TestSDKDeps: the public SDK depends on the standard library and the wire
// types, so users import nothing of the daemon; on two internal packages
// that depend on the standard library only and exist to be shared with
// the agent and the daemon (internal/outevent, the codec of output events;
// internal/chunkio, big-piece copies of uploads); and on one library
// besides, made for its job:
//   - github.com/coder/websocket, for the web terminal (Sandbox.Terminal).
//     The standard library has no WebSocket client, a correct one (framing,
//     masking, fragmentation, the close handshake) is not code to
//     hand-write, and coder/websocket is small, well kept and has no
//     dependencies of its own.
func TestSDKDeps(t *testing.T) {
	stdlibOnly := []string{"github.com/sandboxd/sandboxd/internal/outevent", "github.com/sandboxd/sandboxd/internal/chunkio"}
	allowed := func(d string) bool {
		return strings.HasPrefix(d, "std:") || d == "github.com/sandboxd/sandboxd/api" || d == "github.com/sandboxd/sandboxd/sandbox" ||
			slices.Contains(stdlibOnly, d) ||
			d == "github.com/coder/websocket" || strings.HasPrefix(d, "github.com/coder/websocket/internal/")
	}
	for _, d := range deps(t, "github.com/sandboxd/sandboxd/sandbox") {
		if !allowed(d) {
			t.Errorf("the SDK imports %s", d)
		}
	}
	for _, p := range stdlibOnly {
		for _, d := range deps(t, p) {
			if !strings.HasPrefix(d, "std:") && d != p {
				t.Errorf("%s, which the SDK imports, imports %s", p, d)
			}
		}
	}
}

// TestDaemonDeps: the daemon and the agent meet only at their seam,
// internal/agentapi (and the public wire types): sandboxd links none of the
// agent's code, so neither side's internals can leak into the other.
func TestDaemonDeps(t *testing.T) {
	for _, d := range deps(t, "github.com/sandboxd/sandboxd/cmd/sandboxd") {
		if d == "github.com/sandboxd/sandboxd/internal/agent" || strings.HasPrefix(d, "github.com/sandboxd/sandboxd/internal/agent/") {
			t.Errorf("sandboxd imports %s", d)
		}
	}
}
