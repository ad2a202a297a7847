// Package metrics defines the daemon's Prometheus metrics. One Metrics
// value is created per daemon and handed to the packages that record.
package metrics

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the daemon's own series.
type Metrics struct {
	CreateSeconds prometheus.Histogram
	StartSeconds  prometheus.Histogram
	// StartPhaseSeconds and StartPhaseCPUSeconds break container starts
	// down by kind (create, start, pool) and phase (runtime.StartTrace).
	StartPhaseSeconds    *prometheus.HistogramVec
	StartPhaseCPUSeconds *prometheus.CounterVec
	// The warm pool: creates it served, and creates it could have served
	// but was empty for.
	PoolHits    prometheus.Counter
	PoolMisses  prometheus.Counter
	ExecTotal   *prometheus.CounterVec
	ExecSeconds prometheus.Histogram
	APIErrors   *prometheus.CounterVec
	// Lifecycle (sleep, wake, crash recovery).
	WakeSeconds     prometheus.Histogram
	SleepsTotal     prometheus.Counter
	CrashesTotal    prometheus.Counter
	OperationsTotal *prometheus.CounterVec
}

// New registers the daemon's metrics with reg.
func New(reg prometheus.Registerer) *Metrics {
	buckets := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	histogram := func(name, help string) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
	}
	counters := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	m := &Metrics{
		CreateSeconds: histogram("sandboxd_create_duration_seconds", "Time to create a new sandbox until its agent answers."),
		StartSeconds:  histogram("sandboxd_start_duration_seconds", "Time to start an existing, stopped sandbox until its agent answers."),
		StartPhaseSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sandboxd_start_phase_duration_seconds",
			Help:    "Wall time of each phase of a container start, by kind (create: a new sandbox; start: a stopped or sleeping one; pool: a warm pool's) and phase (record, wait, prepare, disk, idmap, overlay, network, bundle, runtime, agent, commit).",
			Buckets: buckets,
		}, []string{"kind", "phase"}),
		StartPhaseCPUSeconds: counters("sandboxd_start_phase_cpu_seconds_total",
			"CPU time of each phase of a container start: the daemon's own and its waited children's (exact only while one start runs at a time), and the container's cgroup's in phases runtime and agent.",
			"kind", "phase"),
		PoolHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sandboxd_warm_pool_hits_total", Help: "New sandboxes that took over a pooled one.",
		}),
		PoolMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sandboxd_warm_pool_misses_total", Help: "New sandboxes the warm pool could have served (default image and options) but had none ready for.",
		}),
		ExecTotal: counters("sandboxd_exec_total",
			"Calls of exec and exec/stream, by outcome (ok: the command ran, whatever its exit code; error: the call failed).", "outcome"),
		ExecSeconds: histogram("sandboxd_exec_duration_seconds", "Latency of exec calls, as the daemon sees them."),
		APIErrors:   counters("sandboxd_api_errors_total", "Error responses of the API, by code.", "code"),
		WakeSeconds: histogram("sandboxd_wake_duration_seconds", "Time to start a sleeping sandbox again on a call, until its agent answers."),
		SleepsTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sandboxd_sleeps_total", Help: "Sandboxes put to sleep after their sleepAfter of inactivity.",
		}),
		CrashesTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sandboxd_container_exits_total", Help: "Containers whose init exited on its own (killed from outside, out of memory) or whose agent stopped answering.",
		}),
		OperationsTotal: counters("sandboxd_operations_total",
			"Calls forwarded to sandboxes' agents, by operation (the route less /v1/sandboxes/{id}: \"POST /exec\", \"POST /processes\", \"POST /contexts\"...) and outcome (ok, error).",
			"op", "outcome"),
	}
	reg.MustRegister(m.CreateSeconds, m.StartSeconds, m.StartPhaseSeconds, m.StartPhaseCPUSeconds, m.PoolHits, m.PoolMisses, m.ExecTotal, m.ExecSeconds, m.APIErrors,
		m.WakeSeconds, m.SleepsTotal, m.CrashesTotal, m.OperationsTotal)
	return m
}
