package manager

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/errdefs"
	"github.com/sandboxd/sandboxd/internal/runtime"
	"github.com/sandboxd/sandboxd/internal/store"
)

// usage returns what rec's container uses now; false if rec is not
// running, the runtime cannot say (no runtime.UsageReader), or the
// container stopped meanwhile.
func (m *Manager) usage(ctx context.Context, rec store.Sandbox) (runtime.Usage, bool) {
	ur, ok := m.cfg.Runtime.(runtime.UsageReader)
	if !ok || rec.Status != api.StatusRunning {
		return runtime.Usage{}, false
	}
	u, err := ur.Usage(ctx, rec.RuntimeName)
	if err != nil {
		if !errors.Is(err, errdefs.ErrNotFound) {
			m.log.Warn("sandbox usage", "sandbox", rec.ID, "err", err)
		}
		return runtime.Usage{}, false
	}
	return u, true
}

// collector reports, at scrape time, the number of sandboxes by status and
// what each running sandbox uses.
type collector struct {
	m                            *Manager
	desc                         *prometheus.Desc
	cpu, memory, pids, diskBytes *prometheus.Desc
}

// NewCollector returns a Prometheus collector of sandboxd_sandboxes{state}
// and, for each running sandbox, sandboxd_sandbox_cpu_seconds_total,
// sandboxd_sandbox_memory_bytes, sandboxd_sandbox_pids and (with a disk
// quota) sandboxd_sandbox_disk_bytes, labelled sandbox_id.
func NewCollector(m *Manager) prometheus.Collector {
	id := []string{"sandbox_id"}
	return &collector{
		m:         m,
		desc:      prometheus.NewDesc("sandboxd_sandboxes", "Sandboxes by state.", []string{"state"}, nil),
		cpu:       prometheus.NewDesc("sandboxd_sandbox_cpu_seconds_total", "CPU time used by a running sandbox's processes since it started.", id, nil),
		memory:    prometheus.NewDesc("sandboxd_sandbox_memory_bytes", "Memory charged to a running sandbox, page cache included.", id, nil),
		pids:      prometheus.NewDesc("sandboxd_sandbox_pids", "Processes and threads of a running sandbox.", id, nil),
		diskBytes: prometheus.NewDesc("sandboxd_sandbox_disk_bytes", "Space used on a running sandbox's disk quota.", id, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.desc
	ch <- c.cpu
	ch <- c.memory
	ch <- c.pids
	ch <- c.diskBytes
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	recs, err := c.m.cfg.Store.List(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	counts := map[string]int{api.StatusCreating: 0, api.StatusRunning: 0, api.StatusSleeping: 0, api.StatusStopped: 0}
	for _, rec := range recs {
		counts[rec.Status]++
		u, ok := c.m.usage(ctx, rec)
		if !ok {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.cpu, prometheus.CounterValue, u.CPU.Seconds(), rec.ID)
		ch <- prometheus.MustNewConstMetric(c.memory, prometheus.GaugeValue, float64(u.MemoryBytes), rec.ID)
		ch <- prometheus.MustNewConstMetric(c.pids, prometheus.GaugeValue, float64(u.Pids), rec.ID)
		if u.DiskBytes > 0 {
			ch <- prometheus.MustNewConstMetric(c.diskBytes, prometheus.GaugeValue, float64(u.DiskBytes), rec.ID)
		}
	}
	for state, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), state)
	}
}
