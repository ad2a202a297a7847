package manager

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/store"
)

// Which creates may take a pooled sandbox: only those whose container would
// be started the same way.
func TestSameRuntime(t *testing.T) {
	pooled, err := newRecord(poolPrefix+"0123456789abcdef", api.CreateSandboxRequest{}, "default")
	if err != nil {
		t.Fatal(err)
	}
	pooled.ImagePath = "/images/default-1"
	cases := []struct {
		name string
		req  api.CreateSandboxRequest
		path string // the image's resolved path; empty: the pool's
		want bool
	}{
		{"defaults", api.CreateSandboxRequest{}, "", true},
		{"record-only settings", api.CreateSandboxRequest{Labels: map[string]string{"a": "b"}, KeepAlive: true, SleepAfter: "1h"}, "", true},
		{"default image by name", api.CreateSandboxRequest{Image: "default", Network: api.NetworkNone, Cwd: "/workspace"}, "", true},
		{"env", api.CreateSandboxRequest{Env: map[string]string{"K": "v"}}, "", false},
		{"cwd", api.CreateSandboxRequest{Cwd: "/tmp"}, "", false},
		{"resources", api.CreateSandboxRequest{Resources: &api.Resources{MemoryMB: 256}}, "", false},
		{"network", api.CreateSandboxRequest{Network: api.NetworkBridge}, "", false},
		{"rebuilt default image", api.CreateSandboxRequest{}, "/images/default-2", false},
		{"other image", api.CreateSandboxRequest{Image: "other"}, "/images/other", false},
	}
	for _, c := range cases {
		rec, err := newRecord("new", c.req, "default")
		if err != nil {
			// A mode newRecord refuses cannot be claimed either.
			rec = store.Sandbox{Network: c.req.Network, Cwd: "/workspace"}
		}
		rec.ImagePath = pooled.ImagePath
		if c.path != "" {
			rec.ImagePath = c.path
		}
		if got := sameRuntime(pooled, rec); got != c.want {
			t.Errorf("%s: sameRuntime = %v, want %v", c.name, got, c.want)
		}
	}
}

// A pool name can be no sandbox ID.
func TestPoolNameIsNoID(t *testing.T) {
	if _, err := NormalizeID(poolPrefix + "0123456789abcdef"); err == nil {
		t.Error("a pool name passes as a sandbox ID")
	}
}

// A pooled sandbox started over an image directory that was since rebuilt
// in place (same path, another directory) is not taken.
func TestTakeSkipsImageRebuiltInPlace(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "default-1")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rec, err := newRecord(poolPrefix+"0123456789abcdef", api.CreateSandboxRequest{}, "default")
	if err != nil {
		t.Fatal(err)
	}
	rec.ImagePath = dir
	old := imageIdentity(dir)
	if old == "" {
		t.Fatal("no identity for an existing directory")
	}
	var p pool
	p.put(&pooled{rec: rec, image: old})
	if err := os.Rename(dir, dir+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	now := imageIdentity(dir)
	if now == old {
		t.Fatalf("identity %s unchanged by a rebuild in place", now)
	}
	if s := p.take(claimable(rec, now)); s != nil {
		t.Error("took a pooled sandbox of the image's previous build")
	}
	if s := p.take(claimable(rec, old)); s == nil {
		t.Error("did not take a pooled sandbox of the current build")
	}
}

// TestPoolTarget: the pool aims for the largest recent burst of creates,
// within its minimum, maximum and memory budget, and forgets old bursts.
func TestPoolTarget(t *testing.T) {
	m := &Manager{cfg: Config{WarmPool: 2, WarmPoolMax: 100}}
	t0 := time.Now()
	if got := m.poolTarget(t0); got != 2 {
		t.Errorf("no demand: target %d, want the minimum 2", got)
	}
	for i := range 30 { // a trickle: one create every 20 s
		m.pool.noteDemand(t0.Add(time.Duration(i)*20*time.Second), m.cfg.WarmPoolMax)
	}
	t1 := t0.Add(30 * 20 * time.Second)
	if got := m.poolTarget(t1); got != 2 {
		t.Errorf("a trickle: target %d, want the minimum 2", got)
	}
	for i := range 60 { // a burst of 60 within a second
		m.pool.noteDemand(t1.Add(time.Duration(i)*time.Millisecond*15), m.cfg.WarmPoolMax)
	}
	if got := m.poolTarget(t1.Add(time.Second)); got != 60 {
		t.Errorf("after a burst of 60: target %d, want 60", got)
	}
	for i := range 60 { // and another, past the maximum
		m.pool.noteDemand(t1.Add(2*time.Second+time.Duration(i)*time.Millisecond), m.cfg.WarmPoolMax)
	}
	if got := m.poolTarget(t1.Add(3 * time.Second)); got != 100 {
		t.Errorf("after 120 creates in 3 s: target %d, want the maximum 100", got)
	}
	m.cfg.WarmPoolMemoryMB = 400
	m.pool.ready = []*pooled{{memory: 10 << 20}, {memory: 6 << 20}, {}} // 8 MiB each, measured; one unknown
	if got := m.poolTarget(t1.Add(3 * time.Second)); got != 50 {
		t.Errorf("400 MiB at 8 MiB each: target %d, want 50", got)
	}
	m.pool.ready = nil
	if got := m.poolTarget(t1.Add(poolDemandWindow + 4*time.Second)); got != 2 {
		t.Errorf("a quiet spell later: target %d, want the minimum 2", got)
	}
}

// TestPoolBusy: on busy CPUs the filler waits, longer each time, past the
// pool's minimum; below it, a second at the most; on idle CPUs, never.
func TestPoolBusy(t *testing.T) {
	busy := true
	m := &Manager{cfg: Config{WarmPool: 2, WarmPoolMax: 10}, cpuBusy: func() bool { return busy }}
	var last time.Duration
	for i := range 12 {
		wait, ok := m.poolBusy(5)
		if !ok || wait < last || wait > poolIdle {
			t.Fatalf("look %d above the minimum on busy CPUs: wait %v, %v (last %v)", i, wait, ok, last)
		}
		last = wait
	}
	if last != poolIdle {
		t.Errorf("busy CPUs for long: wait %v, want it grown to %v", last, poolIdle)
	}
	if wait, ok := m.poolBusy(1); !ok || wait != poolBusyWait {
		t.Errorf("below the minimum on busy CPUs: %v, %v; want a short wait", wait, ok)
	}
	m.pool.busySince = time.Now().Add(-poolBusyMax)
	if _, ok := m.poolBusy(1); ok {
		t.Error("below the minimum, busy CPUs for a second: still waiting")
	}
	if _, ok := m.poolBusy(1); !ok {
		t.Error("below the minimum, busy CPUs again: no wait at first")
	}
	busy = false
	if wait, ok := m.poolBusy(5); ok {
		t.Errorf("idle CPUs: wait %v", wait)
	}
	busy = true
	if wait, _ := m.poolBusy(5); wait != poolBusyWait {
		t.Errorf("busy again after idle: wait %v, want %v from the start", wait, poolBusyWait)
	}
}
