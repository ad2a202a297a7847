package manager_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/manager"
	"github.com/sandboxd/sandboxd/internal/manager/managertest"
)

// TestUsage: Get shows what a running sandbox uses, as its runtime reads
// it, and nothing for a stopped one; List stays without; /metrics has the
// running sandboxes' series, labelled by ID.
func TestUsage(t *testing.T) {
	env := managertest.New(t)
	m, ctx := env.Manager, context.Background()
	if _, err := m.Agent(ctx, "busy"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Create(ctx, "resting", api.CreateSandboxRequest{}); err != nil {
		t.Fatal(err)
	}
	sb, err := m.Get(ctx, "busy")
	if err != nil {
		t.Fatal(err)
	}
	want := api.SandboxUsage{CPUMs: 1500, MemoryBytes: 32 << 20, Pids: 3, DiskBytes: 5 << 20}
	if sb.Usage == nil || *sb.Usage != want {
		t.Errorf("usage = %+v, want %+v", sb.Usage, want)
	}
	list, err := m.List(ctx, nil)
	if err != nil || len(list) != 2 || list[0].Usage != nil || list[1].Usage != nil {
		t.Errorf("list = %+v, %v; want two sandboxes without usage", list, err)
	}

	// "resting" stops, as its container would on its own.
	if err := env.Runtime.Stop(ctx, "resting"); err != nil {
		t.Fatal(err)
	}
	if sb, err := m.Get(ctx, "resting"); err != nil || sb.Usage != nil {
		t.Errorf("usage of a stopped container: %+v, %v", sb.Usage, err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(manager.NewCollector(m))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "sandboxd_sandbox_") {
			continue
		}
		for _, mt := range mf.GetMetric() {
			v := mt.GetGauge().GetValue() + mt.GetCounter().GetValue()
			got[fmt.Sprintf("%s{%s=%q}", mf.GetName(), mt.GetLabel()[0].GetName(), mt.GetLabel()[0].GetValue())] = fmt.Sprint(v)
		}
	}
	wantSeries := map[string]string{
		`sandboxd_sandbox_cpu_seconds_total{sandbox_id="busy"}`: "1.5",
		`sandboxd_sandbox_memory_bytes{sandbox_id="busy"}`:      fmt.Sprint(float64(32 << 20)),
		`sandboxd_sandbox_pids{sandbox_id="busy"}`:              "3",
		`sandboxd_sandbox_disk_bytes{sandbox_id="busy"}`:        fmt.Sprint(float64(5 << 20)),
	}
	if !maps.Equal(got, wantSeries) {
		t.Errorf("series = %v, want %v", got, wantSeries)
	}
}
