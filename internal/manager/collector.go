package manager

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sandboxd/sandboxd/api"
)

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
	counts, err := c.m.Counts(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for state, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), state)
	}
	if counts[api.StatusRunning] > 0 {
		c.collectUsage(ctx, ch)
	}
}

// collectUsage reports what each running sandbox uses.
func (c *collector) collectUsage(ctx context.Context, ch chan<- prometheus.Metric) {
	recs, err := c.m.cfg.Store.List(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.cpu, err)
		return
	}
	for _, rec := range recs {
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
}
