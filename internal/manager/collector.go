package manager

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// collector reports the number of sandboxes by status at scrape time.
type collector struct {
	m    *Manager
	desc *prometheus.Desc
}

// NewCollector returns a Prometheus collector of sandboxd_sandboxes{state}.
func NewCollector(m *Manager) prometheus.Collector {
	return &collector{m: m, desc: prometheus.NewDesc("sandboxd_sandboxes", "Sandboxes by state.", []string{"state"}, nil)}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

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
}
