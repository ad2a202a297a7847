package policy

import (
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
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
	for _, d := range deps(t, "github.com/sandboxd/sandboxd/cmd/sandbox-agent", "CGO_ENABLED=0") {
		for _, f := range forbidden {
			if strings.HasPrefix(strings.TrimPrefix(d, "std:"), f) {
				t.Errorf("sandbox-agent imports %s", d)
			}
		}
	}
}

// TestSDKDeps: the public SDK depends on the standard library and the wire
// types only, so users import nothing of the daemon.
func TestSDKDeps(t *testing.T) {
	for _, d := range deps(t, "github.com/sandboxd/sandboxd/sandbox") {
		if !strings.HasPrefix(d, "std:") && d != "github.com/sandboxd/sandboxd/api" && d != "github.com/sandboxd/sandboxd/sandbox" {
			t.Errorf("the SDK imports %s", d)
		}
	}
}
