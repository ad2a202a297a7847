// Package runtimetest is the test suite every runtime.Runtime backend runs:
// start, exec through the agent, stop keeping files, restart, attach from a
// new Runtime value (a daemon restart), destroy leaving nothing behind, the
// delegated cgroup subtree, and the optional capabilities a backend has.
package runtimetest

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agentapi"
	"github.com/sandboxd/sandboxd/internal/agentclient"
	"github.com/sandboxd/sandboxd/internal/runtime"
)

// Factory returns a Runtime keeping its state in dir. Called more than once
// with the same dir, it must see what earlier values left (as after a daemon
// restart).
type Factory func(t *testing.T, dir string) runtime.Runtime

// Env is what the suite needs from the backend's test.
type Env struct {
	// Dir is the state directory passed to the factory.
	Dir string
	// Image is a root filesystem with a POSIX shell.
	Image string
	// Leftovers reports what of sandbox id remains on the host (mounts,
	// cgroups, directories); nil or empty means nothing.
	Leftovers func(id string) []string
	// Resources are given to every sandbox the suite starts (a backend
	// runs the suite once per storage layout it has, say).
	Resources runtime.Resources
	// Network is every sandbox's network mode (runtime.Spec.Network).
	Network string
}

// Run runs the suite.
func Run(t *testing.T, env Env, newRuntime Factory) {
	t.Run("Lifecycle", func(t *testing.T) { testLifecycle(t, env, newRuntime) })
	t.Run("Attach", func(t *testing.T) { testAttach(t, env, newRuntime) })
	t.Run("DestroyIdempotent", func(t *testing.T) { testDestroyIdempotent(t, env, newRuntime) })
	t.Run("ExitedOnKill", func(t *testing.T) { testExitedOnKill(t, env, newRuntime) })
	t.Run("Hostname", func(t *testing.T) { testHostname(t, env, newRuntime) })
	t.Run("Cgroup", func(t *testing.T) { testCgroup(t, env, newRuntime) })
	t.Run("Usage", func(t *testing.T) { testUsage(t, env, newRuntime) })
}

func spec(id string, env Env, slot uint32) runtime.Spec {
	return runtime.Spec{ID: id, Image: env.Image, UIDBase: 1_000_000_000 + slot*runtime.IDMapSize, Resources: env.Resources, Network: env.Network}
}

func exec(t *testing.T, inst *runtime.Instance, cmd string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := agentclient.New(inst.Socket)
	defer c.Close()
	if err := c.CheckVersion(ctx); err != nil {
		t.Fatalf("agent version: %v", err)
	}
	res, err := c.Exec(ctx, agentapi.ExecRequest{ExecRequest: api.ExecRequest{Command: cmd}})
	if err != nil {
		t.Fatalf("exec %q: %v", cmd, err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("exec %q: exit %d: %s", cmd, res.ExitCode, res.Stderr)
	}
	return res.Stdout
}

func testLifecycle(t *testing.T, env Env, newRuntime Factory) {
	ctx := context.Background()
	rt := newRuntime(t, env.Dir)
	const id = "rt-lifecycle"
	t.Cleanup(func() { _ = rt.Destroy(ctx, id) })
	inst, err := rt.Start(ctx, spec(id, env, 1))
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	if got := exec(t, inst, "hostname; id -u; pwd"); got != id+"\n0\n/workspace\n" {
		t.Errorf("hostname, uid, cwd = %q", got)
	}
	exec(t, inst, "echo kept > /workspace/f")
	if _, err := rt.Start(ctx, spec(id, env, 1)); err == nil {
		t.Errorf("second start of a running sandbox succeeded")
	}
	if err := rt.Stop(ctx, id); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := rt.Stop(ctx, id); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	inst, err = rt.Start(ctx, spec(id, env, 1))
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	if got := exec(t, inst, "cat /workspace/f"); got != "kept\n" {
		t.Errorf("file after restart = %q", got)
	}
	if err := rt.Destroy(ctx, id); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	if left := env.Leftovers(id); len(left) > 0 {
		t.Errorf("left after destroy: %s", strings.Join(left, ", "))
	}
}

func testAttach(t *testing.T, env Env, newRuntime Factory) {
	ctx := context.Background()
	rt := newRuntime(t, env.Dir)
	const id = "rt-attach"
	t.Cleanup(func() { _ = rt.Destroy(ctx, id) })
	inst, err := rt.Start(ctx, spec(id, env, 2))
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	exec(t, inst, "echo before > /workspace/f")

	rt2 := newRuntime(t, env.Dir) // as after a daemon restart
	inst2, err := rt2.Attach(ctx, id)
	if err != nil {
		t.Fatalf("attach: %v", err)
	}
	if inst2.Pid != inst.Pid {
		t.Errorf("attached pid %d, started %d", inst2.Pid, inst.Pid)
	}
	if got := exec(t, inst2, "cat /workspace/f"); got != "before\n" {
		t.Errorf("after attach = %q", got)
	}
	if err := rt2.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := rt2.Attach(ctx, id); err == nil {
		t.Errorf("attach to a stopped sandbox succeeded")
	}
	if _, err := os.Stat(inst.Socket); err == nil {
		t.Errorf("socket %s left after stop", inst.Socket)
	}
}

func testDestroyIdempotent(t *testing.T, env Env, newRuntime Factory) {
	ctx := context.Background()
	rt := newRuntime(t, env.Dir)
	if err := rt.Destroy(ctx, "rt-never-created"); err != nil {
		t.Fatalf("destroy of an unknown id: %v", err)
	}
	if _, err := rt.Start(ctx, spec("rt-destroy", env, 3)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := rt.Destroy(ctx, "rt-destroy"); err != nil {
			t.Fatalf("destroy %d: %v", i, err)
		}
	}
	if left := env.Leftovers("rt-destroy"); len(left) > 0 {
		t.Errorf("left after destroy: %s", strings.Join(left, ", "))
	}
}

func testExitedOnKill(t *testing.T, env Env, newRuntime Factory) {
	ctx := context.Background()
	rt := newRuntime(t, env.Dir)
	const id = "rt-exited"
	t.Cleanup(func() { _ = rt.Destroy(ctx, id) })
	inst, err := rt.Start(ctx, spec(id, env, 4))
	if err != nil {
		t.Fatal(err)
	}
	if inst.Exited == nil {
		t.Skip("this runtime does not report exits")
	}
	select {
	case <-inst.Exited:
		t.Fatal("Exited closed while the container runs")
	case <-time.After(100 * time.Millisecond):
	}
	p, err := os.FindProcess(inst.Pid)
	if err != nil {
		t.Fatal(err)
	}
	_ = p.Kill() // from outside, as the OOM killer would
	select {
	case <-inst.Exited:
	case <-time.After(10 * time.Second):
		t.Fatal("Exited not closed 10 s after the init was killed")
	}
	// Start again over the same files after such a death.
	if _, err := rt.Start(ctx, spec(id, env, 4)); err != nil {
		t.Fatalf("start after death: %v", err)
	}
}
