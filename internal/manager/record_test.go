package manager

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

func TestNormalizeID(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"demo", "demo", true},
		{"Demo-1", "demo-1", true},
		{"a", "a", true},
		{"0", "0", true},
		{strings.Repeat("a", 63), strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), "", false},
		{"", "", false},
		{"-a", "", false},
		{"a-", "", false},
		{"a_b", "", false},
		{"a.b", "", false},
		{"../x", "", false},
		{"a b", "", false},
		{"a\x00", "", false},
		{"é", "", false},
	}
	for _, c := range cases {
		got, err := NormalizeID(c.in)
		if c.ok && (err != nil || got != c.want) {
			t.Errorf("NormalizeID(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
		if !c.ok && !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("NormalizeID(%q) = %q, %v; want ErrInvalidArgument", c.in, got, err)
		}
	}
}

// FuzzNormalizeID: an accepted ID is always safe as one path element and a
// hostname label.
func FuzzNormalizeID(f *testing.F) {
	for _, s := range []string{"demo", "A-b", "../..", "a/b", "-", "x\x00y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := NormalizeID(s)
		if err != nil {
			return
		}
		if len(id) == 0 || len(id) > 63 || strings.ContainsAny(id, "/.\x00 _") || id[0] == '-' || id[len(id)-1] == '-' || strings.ToLower(id) != id {
			t.Fatalf("accepted unsafe id %q from %q", id, s)
		}
	})
}

func TestNewRecord(t *testing.T) {
	neg := &api.Resources{MemoryMB: -1}
	cases := []struct {
		name string
		req  api.CreateSandboxRequest
		ok   bool
	}{
		{"defaults", api.CreateSandboxRequest{}, true},
		{"full", api.CreateSandboxRequest{Image: "default", Env: map[string]string{"A": "b"}, Cwd: "/tmp", SleepAfter: "1h",
			Resources: &api.Resources{CPUs: 2, MemoryMB: 2048, Pids: 100}, Network: "none", Labels: map[string]string{"k": "v"}}, true},
		{"negative memory", api.CreateSandboxRequest{Resources: neg}, false},
		{"tiny memory", api.CreateSandboxRequest{Resources: &api.Resources{MemoryMB: 4}}, false},
		{"too many cpus", api.CreateSandboxRequest{Resources: &api.Resources{CPUs: 1000}}, false},
		{"bridge", api.CreateSandboxRequest{Network: "bridge"}, true},
		{"unknown network", api.CreateSandboxRequest{Network: "host"}, false},
		{"relative cwd", api.CreateSandboxRequest{Cwd: "tmp"}, false},
		{"env with =", api.CreateSandboxRequest{Env: map[string]string{"A=B": "c"}}, false},
		{"env with NUL", api.CreateSandboxRequest{Env: map[string]string{"A": "b\x00"}}, false},
		{"bad sleepAfter", api.CreateSandboxRequest{SleepAfter: "soon"}, false},
		{"short sleepAfter", api.CreateSandboxRequest{SleepAfter: "1ms"}, false},
		{"bad label", api.CreateSandboxRequest{Labels: map[string]string{"a=b": "c"}}, false},
	}
	for _, c := range cases {
		rec, err := newRecord("x", c.req, "default")
		if c.ok != (err == nil) {
			t.Errorf("%s: err = %v, want ok %v", c.name, err, c.ok)
			continue
		}
		if err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: %v is not ErrInvalidArgument", c.name, err)
		}
		if c.name == "defaults" && (rec.Image != "default" || rec.Cwd != "/workspace" || rec.Network != "none" || rec.SleepAfter != DefaultSleepAfter || rec.Status != api.StatusCreating) {
			t.Errorf("defaults: %+v", rec)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		10 * time.Minute: "10m", time.Hour: "1h", 90 * time.Minute: "1h30m", 45 * time.Second: "45s", 61 * time.Second: "1m1s",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
