package e2e

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/sandbox"
)

// TestSandboxUsage: GET /v1/sandboxes/{id} of a running sandbox has its
// usage, read from its cgroups and disk (the disk's growing by what it
// writes); a stopped one has none, nor does the list; /metrics has a
// series of each figure per running sandbox.
func TestSandboxUsage(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	ctx := ctxT(t, 2*time.Minute)
	sb, err := d.Client.Create(ctx, "usage", &api.CreateSandboxRequest{Resources: &api.Resources{DiskMB: 64}})
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, sb, "python3 -c 'sum(range(3000000))'")
	before, err := sb.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	u := before.Usage
	if u == nil || u.MemoryBytes <= 0 || u.Pids < 1 || u.CPUMs <= 0 || u.DiskBytes <= 0 {
		t.Fatalf("usage = %+v, want memory, pids, CPU and disk", u)
	}
	if res := mustExec(t, sb, "dd if=/dev/zero of=/workspace/big bs=1M count=20 conv=fsync"); res.ExitCode != 0 {
		t.Fatalf("dd: %s", res.Stderr)
	}
	after, err := sb.Info(ctx)
	if err != nil || after.Usage == nil {
		t.Fatalf("info: %+v, %v", after, err)
	}
	if grown := after.Usage.DiskBytes - u.DiskBytes; grown < 20<<20 {
		t.Errorf("disk used grew by %d bytes after writing 20 MiB (%d, then %d)", grown, u.DiskBytes, after.Usage.DiskBytes)
	}

	// /metrics: the running sandbox's series.
	series := metricSeries(t, d, `{sandbox_id="usage"}`)
	for _, name := range []string{"sandboxd_sandbox_cpu_seconds_total", "sandboxd_sandbox_memory_bytes", "sandboxd_sandbox_pids", "sandboxd_sandbox_disk_bytes"} {
		v, ok := series[name]
		if !ok || v <= 0 {
			t.Errorf("/metrics %s{sandbox_id=\"usage\"} = %v (present %v), want > 0", name, v, ok)
		}
	}
	if v := series["sandboxd_sandbox_disk_bytes"]; v < float64(after.Usage.DiskBytes)*0.9 {
		t.Errorf("/metrics disk bytes %v, info says %d", v, after.Usage.DiskBytes)
	}

	list, err := d.Client.List(ctx, sandbox.ListOptions{})
	if err != nil || len(list) != 1 || list[0].Usage != nil {
		t.Errorf("list: %+v, %v; want one sandbox without usage", list, err)
	}
	// Stopped (its container killed): no usage, no series.
	killContainer(t, d, "usage")
	waitStatus(t, sb, api.StatusStopped, 10*time.Second)
	if info, err := sb.Info(ctx); err != nil || info.Usage != nil {
		t.Errorf("stopped sandbox: usage %+v, %v", info.Usage, err)
	}
	if series := metricSeries(t, d, `{sandbox_id="usage"}`); len(series) > 0 {
		t.Errorf("/metrics of a stopped sandbox: %v", series)
	}
}

// metricSeries returns the series of /metrics whose labels are labels, by
// metric name.
func metricSeries(t *testing.T, d *Daemon, labels string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(d.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(line, labels+" ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		v, err := strconv.ParseFloat(rest, 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		out[name] = v
	}
	return out
}
