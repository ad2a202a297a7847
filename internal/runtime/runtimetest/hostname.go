package runtimetest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sandboxd/sandboxd/internal/errdefs"
	"github.com/sandboxd/sandboxd/internal/runtime"
)

// testHostname checks runtime.HostnameSetter, for a backend that has it: a
// container started under a pool-like name with that hostname gets another
// one, in the kernel and in /etc; it keeps it across a restart that asks
// for it; a stopped container is not found.
func testHostname(t *testing.T, env Env, newRuntime Factory) {
	ctx := context.Background()
	rt := newRuntime(t, env.Dir)
	hs, ok := rt.(runtime.HostnameSetter)
	if !ok {
		t.Skip("no runtime.HostnameSetter")
	}
	const name, host = "pool.rt-hostname", "rt-claimed"
	t.Cleanup(func() { _ = rt.Destroy(ctx, name) })
	inst, err := rt.Start(ctx, spec(name, env, 5))
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	if got := exec(t, inst, "hostname; cat /etc/hostname"); got != name+"\n"+name+"\n" {
		t.Errorf("hostname before = %q", got)
	}
	if err := hs.SetHostname(ctx, name, host); err != nil {
		t.Fatalf("set hostname: %v", err)
	}
	const check = "hostname; cat /etc/hostname; grep -c rt-claimed /etc/hosts; grep -c pool /etc/hosts || true"
	want := host + "\n" + host + "\n1\n0\n"
	if got := exec(t, inst, check); got != want {
		t.Errorf("hostname, /etc/hostname, /etc/hosts after = %q, want %q", got, want)
	}
	if err := hs.SetHostname(ctx, name, "bad/name"); err == nil {
		t.Error("set hostname bad/name succeeded")
	}
	if err := rt.Stop(ctx, name); err != nil {
		t.Fatal(err)
	}
	if err := hs.SetHostname(ctx, name, host); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("set hostname of a stopped container: %v, want not found", err)
	}
	s := spec(name, env, 5)
	s.Hostname = host
	if inst, err = rt.Start(ctx, s); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if got := exec(t, inst, check); got != want {
		t.Errorf("after restart = %q, want %q", got, want)
	}
	if err := rt.Destroy(ctx, name); err != nil {
		t.Fatal(err)
	}
	if left := env.Leftovers(name); len(left) > 0 {
		t.Errorf("left after destroy: %s", strings.Join(left, ", "))
	}
}
