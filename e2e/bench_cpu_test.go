package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sandboxd/sandboxd/internal/runtime/runc"
)

// cpuClock reads the CPU time of the two sides of a transfer: this process
// (the in-process daemon and the SDK) and the sandbox's cgroup (agent,
// shell and command). On a shared machine, where wall-clock throughput
// swings with the load, CPU time per byte is the steadier measure of what
// the plumbing costs.
type cpuClock struct {
	self    time.Duration // user+system time of this process
	sandbox time.Duration // cpuacct.usage of the sandbox's cgroup
	ok      bool          // the sandbox's time could be read (cgroup v1)
}

// readCPU returns the CPU times now.
func readCPU(d *Daemon, id string) cpuClock {
	var c cpuClock
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		c.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	data, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/cpuacct", runc.CgroupPath(d.DataDir, id), "cpuacct.usage"))
	if err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64); err == nil {
			c.sandbox, c.ok = time.Duration(n), true
		}
	}
	return c
}

// reportCPU reports the CPU time spent between c0 and c1 per GiB moved:
// "daemon-sdk-cpu-ms/GiB" and, where it could be read, "sandbox-cpu-ms/GiB".
func reportCPU(b metricReporter, c0, c1 cpuClock, bytes int64, prefix string) {
	gib := float64(bytes) / (1 << 30)
	b.ReportMetric(float64((c1.self-c0.self).Milliseconds())/gib, prefix+"daemon-sdk-cpu-ms/GiB")
	reportSandboxCPU(b, c0, c1, bytes, prefix)
}

// reportSandboxCPU reports the sandbox's share of reportCPU alone.
func reportSandboxCPU(b metricReporter, c0, c1 cpuClock, bytes int64, prefix string) {
	gib := float64(bytes) / (1 << 30)
	if c0.ok && c1.ok {
		b.ReportMetric(float64((c1.sandbox-c0.sandbox).Milliseconds())/gib, prefix+"sandbox-cpu-ms/GiB")
	}
}

type metricReporter interface{ ReportMetric(float64, string) }
