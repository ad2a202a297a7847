package manager

import (
	"os"
	"path/filepath"
	"testing"

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
