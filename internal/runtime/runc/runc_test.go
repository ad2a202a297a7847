package runc_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sandboxd/sandboxd/internal/runtime"
	"github.com/sandboxd/sandboxd/internal/runtime/runc"
	"github.com/sandboxd/sandboxd/internal/runtime/runtimetest"
	"github.com/sandboxd/sandboxd/internal/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.RemoveFixtures()
	os.Exit(code)
}

func TestSuite(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := testutil.TempDir(t)
	agent := testutil.AgentBinary(t)
	env := runtimetest.Env{
		Dir:       dir,
		Image:     testutil.BusyboxImage(t),
		Leftovers: func(id string) []string { return runc.Leftovers(filepath.Join(dir), id) },
	}
	runtimetest.Run(t, env, func(t *testing.T, dir string) runtime.Runtime {
		rt, err := runc.New(runc.Config{Dir: dir, Agent: agent})
		if err != nil {
			t.Fatal(err)
		}
		return rt
	})
}
