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
	agent := testutil.AgentBinary(t)
	image := testutil.BusyboxImage(t)
	// Both layouts of the writable layer: on the host's file system, and
	// on a quota file system of its own (quota.go).
	for _, tc := range []struct {
		name string
		res  runtime.Resources
	}{{"HostDisk", runtime.Resources{}}, {"DiskQuota", runtime.Resources{DiskMB: 64}}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := testutil.TempDir(t)
			env := runtimetest.Env{
				Dir:       dir,
				Image:     image,
				Leftovers: func(id string) []string { return runc.Leftovers(filepath.Join(dir), id) },
				Resources: tc.res,
			}
			runtimetest.Run(t, env, func(t *testing.T, dir string) runtime.Runtime {
				rt, err := runc.New(runc.Config{Dir: dir, Agent: agent})
				if err != nil {
					t.Fatal(err)
				}
				return rt
			})
		})
	}
}
