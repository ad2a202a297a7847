package manager

import (
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/errdefs"
	"github.com/sandboxd/sandboxd/internal/runtime"
	"github.com/sandboxd/sandboxd/internal/store"
)

// Bounds on what a sandbox may ask for.
const (
	maxCPUs     = 64
	maxMemoryMB = 1 << 20
	maxPids     = 1 << 20
	maxDiskMB   = 1 << 24 // 16 TiB
)

// newRecord validates a create request and turns it into a record.
func newRecord(id string, o api.CreateSandboxRequest, defaultImage string) (store.Sandbox, error) {
	now := time.Now().UTC()
	rec := store.Sandbox{
		ID: id, Status: api.StatusCreating, Image: o.Image, CreatedAt: now, LastActiveAt: now,
		SleepAfter: DefaultSleepAfter, KeepAlive: o.KeepAlive, Network: o.Network, Cwd: o.Cwd,
		Env: o.Env, Labels: o.Labels,
	}
	if rec.Image == "" {
		rec.Image = defaultImage
	}
	if o.SleepAfter != "" {
		d, err := parseSleepAfter(o.SleepAfter)
		if err != nil {
			return rec, err
		}
		rec.SleepAfter = d
	}
	switch rec.Network {
	case "":
		rec.Network = api.NetworkNone
	case api.NetworkNone, api.NetworkBridge:
	default:
		return rec, fmt.Errorf("%w: network %q: want %q or %q", errdefs.ErrInvalidArgument, rec.Network, api.NetworkNone, api.NetworkBridge)
	}
	if rec.Cwd == "" {
		rec.Cwd = "/workspace"
	}
	if !path.IsAbs(rec.Cwd) || strings.ContainsRune(rec.Cwd, 0) {
		return rec, fmt.Errorf("%w: cwd %q must be an absolute path", errdefs.ErrInvalidArgument, rec.Cwd)
	}
	if err := ValidateEnv(rec.Env); err != nil {
		return rec, err
	}
	if err := validateLabels(rec.Labels); err != nil {
		return rec, err
	}
	if r := o.Resources; r != nil {
		if r.CPUs < 0 || r.CPUs > maxCPUs || r.MemoryMB < 0 || r.MemoryMB > maxMemoryMB || r.Pids < 0 || r.Pids > maxPids || r.DiskMB < 0 || r.DiskMB > maxDiskMB {
			return rec, fmt.Errorf("%w: resources out of range (cpus 0-%d, memoryMB 0-%d, pids 0-%d, diskMB 0-%d)", errdefs.ErrInvalidArgument, maxCPUs, maxMemoryMB, maxPids, maxDiskMB)
		}
		if r.MemoryMB > 0 && r.MemoryMB < 16 {
			return rec, fmt.Errorf("%w: memoryMB %d: at least 16", errdefs.ErrInvalidArgument, r.MemoryMB)
		}
		if r.DiskMB > 0 && r.DiskMB < runtime.MinDiskMB {
			return rec, fmt.Errorf("%w: diskMB %d: at least %d", errdefs.ErrInvalidArgument, r.DiskMB, runtime.MinDiskMB)
		}
		rec.Resources = *r
	}
	return rec, nil
}

// ValidateEnv checks environment variables: names non-empty, without '='
// or NUL; values without NUL.
func ValidateEnv(env map[string]string) error {
	for k, v := range env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return fmt.Errorf("%w: env %q: names must be non-empty without '=' or NUL, values without NUL", errdefs.ErrInvalidArgument, k)
		}
	}
	return nil
}

func parseSleepAfter(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d < time.Second {
		return 0, fmt.Errorf("%w: sleepAfter %q: want a duration of at least 1s, like \"10m\"", errdefs.ErrInvalidArgument, s)
	}
	return d, nil
}

func validateLabels(l map[string]string) error {
	for k, v := range l {
		if k == "" || len(k) > 63 || len(v) > 255 || strings.ContainsAny(k, "=,") {
			return fmt.Errorf("%w: label %q: keys are 1-63 characters without '=' or ','; values at most 255", errdefs.ErrInvalidArgument, k)
		}
	}
	return nil
}

// toAPI describes a record on the wire.
func toAPI(r store.Sandbox) api.Sandbox {
	labels := r.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	lim := runtime.Resources{CPUs: r.Resources.CPUs, MemoryMB: r.Resources.MemoryMB, Pids: r.Resources.Pids}.WithDefaults()
	res := api.Resources{CPUs: lim.CPUs, MemoryMB: lim.MemoryMB, Pids: lim.Pids, DiskMB: r.Resources.DiskMB}
	return api.Sandbox{
		ID: r.ID, Status: r.Status, Image: r.Image, CreatedAt: r.CreatedAt, LastActiveAt: r.LastActiveAt,
		SleepAfter: formatDuration(r.SleepAfter), KeepAlive: r.KeepAlive, Resources: res, Network: r.Network,
		Cwd: r.Cwd, Env: r.Env, Labels: labels,
	}
}

// formatDuration writes d as time.Duration does, less zero units: "10m",
// "1h30m", "45s".
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
