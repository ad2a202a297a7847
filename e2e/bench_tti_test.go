package e2e

// Time to interactive, as public comparisons of sandbox platforms measure
// it: create a sandbox, then run `node -v` in it; 100 one after another,
// and a burst of 100 at once. The same `node -v` run without containers
// (chroot into the default image) is measured in the same run, as the
// floor.
//
//	go test -run '^$' -bench BenchmarkTimeToInteractive -benchtime 1x ./e2e/
//
// Each case reports "p50-ms" and "p95-ms" over its sandboxes (for a burst,
// from the release of all 100 to each one's answer) and, for a burst,
// "first-ms" and "wall-ms" (the first and the last answer); ns/op is meaningless here. A sequence is b.N sandboxes (make
// bench's -benchtime 100x: 100); a burst is 100 whatever b.N. pool-seq
// runs with the default warm pool (2, refilled between sandboxes);
// pool-burst with a pool that may grow to 100, after a first burst
// (untimed) that makes it grow; the others with none.
//
// Beside the floor, a bare `runc run` of `node -v` on the same image
// (runc-seq, runc-burst: runc's default spec, the image as a read-only
// root; no overlay, user namespace, seccomp profile, agent or daemon).
//
// The cold cases create each sandbox (PUT), then run `node -v` (both
// timed), and break the create down into the phases the daemon reports in
// /metrics (runtime.StartTrace): "<phase>-ms" is a phase's mean wall time
// and "<phase>-cpu-ms" its mean CPU time (one at a time only: under a
// burst the daemon's CPU cannot be told apart by start); "command-ms" and
// "command-cpu-ms" are the first command's (its CPU: the sandbox cgroup's).
// "cpu-ms" is the mean CPU of the whole: this process (daemon and SDK) and
// its waited children, plus the sandboxes' cgroups. cold-burst also times
// `true` in a sandbox that runs throughout: "exec-idle-p50-ms" before the
// burst, "exec-burst-p50-ms" and "-p95-ms" during it.

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/internal/daemon"
	"github.com/sandboxd/sandboxd/internal/runtime"
	"github.com/sandboxd/sandboxd/internal/testutil"
)

const ttiN = 100

func BenchmarkTimeToInteractive(b *testing.B) {
	image := testutil.DefaultImage(b)
	b.Run("chroot-seq", func(b *testing.B) {
		var lat []time.Duration
		for b.Loop() {
			start := time.Now()
			if out, err := exec.Command("chroot", image, "node", "-v").CombinedOutput(); err != nil {
				b.Fatalf("chroot node -v: %v: %s", err, out)
			}
			lat = append(lat, time.Since(start))
		}
		reportTTI(b, lat, 0)
	})
	b.Run("chroot-burst", func(b *testing.B) {
		once(b, func() {
			lat, wall := ttiBurst(b, func(int) error {
				out, err := exec.Command("chroot", image, "node", "-v").CombinedOutput()
				if err != nil {
					return fmt.Errorf("%v: %s", err, out)
				}
				return nil
			})
			reportTTI(b, lat, wall)
		})
	})
	b.Run("runc-seq", func(b *testing.B) {
		rb := newRuncBaseline(b)
		rb.args = []string{"node", "-v"}
		ctx := ctxT(b, 10*time.Minute)
		var lat []time.Duration
		cpu0 := runtime.ProcessCPU()
		for b.Loop() {
			id := rb.bundle(rb.image, true)
			start := time.Now()
			err := rb.run(ctx, id)
			lat = append(lat, time.Since(start))
			rb.remove(id)
			if err != nil {
				b.Fatal(err)
			}
		}
		reportTTI(b, lat, 0)
		b.ReportMetric(ms(runtime.ProcessCPU()-cpu0)/float64(len(lat)), "cpu-ms")
	})
	b.Run("runc-burst", func(b *testing.B) {
		rb := newRuncBaseline(b)
		rb.args = []string{"node", "-v"}
		ctx := ctxT(b, 10*time.Minute)
		once(b, func() {
			ids := make([]string, ttiN)
			for i := range ids {
				ids[i] = rb.bundle(rb.image, true)
			}
			cpu0 := runtime.ProcessCPU()
			lat, wall := ttiBurst(b, func(i int) error { return rb.run(ctx, ids[i]) })
			reportTTI(b, lat, wall)
			b.ReportMetric(ms(runtime.ProcessCPU()-cpu0)/ttiN, "cpu-ms")
			for _, id := range ids {
				rb.remove(id)
			}
		})
	})
	b.Run("cold-seq", func(b *testing.B) {
		d := StartDaemon(b, warmPool(0))
		ctx := ctxT(b, 10*time.Minute)
		var lat []time.Duration
		var cmd, cmdCPU, cpu time.Duration
		before := startPhases(b, d)
		i := 0
		for b.Loop() {
			i++
			id := benchID("tti-cold", i)
			c0 := runtime.ProcessCPU()
			start := time.Now()
			sb, err := d.Client.Create(ctx, id, nil)
			if err != nil {
				b.Fatal(err)
			}
			created := time.Now()
			s0 := readCPU(d, id)
			if err := nodeV(ctx, d, id); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
			cmd += time.Since(created)
			s1 := readCPU(d, id)
			cmdCPU += s1.sandbox - s0.sandbox
			cpu += runtime.ProcessCPU() - c0 + s1.sandbox
			_ = sb
			destroySandboxes(b, d, id)
		}
		reportTTI(b, lat, 0)
		n := float64(len(lat))
		reportPhases(b, before, startPhases(b, d), true)
		b.ReportMetric(ms(cmd)/n, "command-ms")
		b.ReportMetric(ms(cmdCPU)/n, "command-cpu-ms")
		b.ReportMetric(ms(cpu)/n, "cpu-ms")
	})
	b.Run("cold-burst", func(b *testing.B) {
		d := StartDaemon(b, warmPool(0))
		ctx := ctxT(b, 10*time.Minute)
		ids := make([]string, ttiN)
		for i := range ids {
			ids[i] = benchID("ttib-cold", i)
		}
		// A sandbox that runs throughout: its exec round trip, idle and
		// during the burst.
		probe := d.Client.Get(benchID("ttib-probe", 0))
		var idle []time.Duration
		for i := range 50 {
			start := time.Now()
			if _, err := probe.Exec(ctx, "true", nil); err != nil {
				b.Fatal(err)
			}
			if i >= 10 { // past the create and the warm-up
				idle = append(idle, time.Since(start))
			}
		}
		once(b, func() {
			before := startPhases(b, d)
			cpu0 := runtime.ProcessCPU()
			stop := make(chan struct{})
			var busy []time.Duration
			var probing sync.WaitGroup
			probing.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					start := time.Now()
					if _, err := probe.Exec(ctx, "true", nil); err != nil {
						b.Error(err)
						return
					}
					busy = append(busy, time.Since(start))
					time.Sleep(10 * time.Millisecond)
				}
			})
			lat, wall := ttiBurst(b, func(i int) error {
				if _, err := d.Client.Create(ctx, ids[i], nil); err != nil {
					return err
				}
				return nodeV(ctx, d, ids[i])
			})
			close(stop)
			probing.Wait()
			cpu := runtime.ProcessCPU() - cpu0
			for _, id := range ids {
				cpu += readCPU(d, id).sandbox
			}
			reportTTI(b, lat, wall)
			reportPhases(b, before, startPhases(b, d), false)
			b.ReportMetric(ms(cpu)/ttiN, "cpu-ms")
			slices.Sort(idle)
			slices.Sort(busy)
			b.ReportMetric(ms(percentile(idle, 50)), "exec-idle-p50-ms")
			b.ReportMetric(ms(percentile(busy, 50)), "exec-burst-p50-ms")
			b.ReportMetric(ms(percentile(busy, 95)), "exec-burst-p95-ms")
		})
		destroySandboxes(b, d, ids...)
	})
	b.Run("pool-burst", func(b *testing.B) {
		// A pool that may grow: a first burst (untimed) teaches it the
		// demand, and the measured one finds it grown.
		d := StartDaemon(b, func(c *daemon.Config) { c.WarmPool, c.WarmPoolMax = 2, ttiN })
		ctx := ctxT(b, 10*time.Minute)
		warm := make([]string, ttiN)
		ids := make([]string, ttiN)
		for i := range ids {
			warm[i], ids[i] = benchID("ttib-learn", i), benchID("ttib-pool", i)
		}
		ttiBurst(b, func(i int) error { return nodeV(ctx, d, warm[i]) })
		destroySandboxes(b, d, warm...)
		waitReady(b, d, ttiN)
		once(b, func() {
			hits := metricValue(b, d, "sandboxd_warm_pool_hits_total")
			created := make([]time.Duration, ttiN)
			start := time.Now()
			lat, wall := ttiBurst(b, func(i int) error {
				if _, err := d.Client.Create(ctx, ids[i], nil); err != nil {
					return err
				}
				created[i] = time.Since(start)
				return nodeV(ctx, d, ids[i])
			})
			reportTTI(b, lat, wall)
			slices.Sort(created)
			b.ReportMetric(ms(percentile(created, 50)), "created-p50-ms")
			b.ReportMetric(ms(created[ttiN-1]), "created-max-ms")
			b.ReportMetric(metricValue(b, d, "sandboxd_warm_pool_hits_total")-hits, "hits")
		})
		destroySandboxes(b, d, ids...)
	})
	b.Run("pool-seq", func(b *testing.B) {
		d := StartDaemon(b, warmPool(2))
		ctx := ctxT(b, 10*time.Minute)
		var lat []time.Duration
		i := 0
		for b.Loop() {
			i++
			waitReady(b, d, 2)
			id := benchID("tti-pool", i)
			start := time.Now()
			if _, err := d.Client.Create(ctx, id, nil); err != nil {
				b.Fatal(err)
			}
			if err := nodeV(ctx, d, id); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
			destroySandboxes(b, d, id)
		}
		reportTTI(b, lat, 0)
	})
}

// nodeV creates sandbox id by its first call, `node -v`.
func nodeV(ctx context.Context, d *Daemon, id string) error {
	res, err := d.Client.Get(id).Exec(ctx, "node -v", nil)
	if err != nil {
		return fmt.Errorf("node -v in %s: %w", id, err)
	}
	if res.ExitCode != 0 || !strings.HasPrefix(res.Stdout, "v") {
		return fmt.Errorf("node -v in %s: exit %d: %q %q", id, res.ExitCode, res.Stdout, res.Stderr)
	}
	return nil
}

// ttiBurst runs f(0..ttiN-1) at once and returns each one's time from the
// common release, and the whole burst's.
func ttiBurst(b *testing.B, f func(i int) error) ([]time.Duration, time.Duration) {
	b.Helper()
	lat := make([]time.Duration, ttiN)
	errs := make([]error, ttiN)
	release := make(chan struct{})
	var wg sync.WaitGroup
	var start time.Time
	for i := range ttiN {
		wg.Go(func() {
			<-release
			errs[i] = f(i)
			lat[i] = time.Since(start)
		})
	}
	start = time.Now()
	close(release)
	wg.Wait()
	wall := time.Since(start)
	for i, err := range errs {
		if err != nil {
			b.Errorf("%d of %d: %v", i, ttiN, err)
		}
	}
	if b.Failed() {
		b.FailNow()
	}
	return lat, wall
}

// once runs f one time, whatever b.N, in a b.Loop (so that the testing
// package calls the benchmark once).
func once(b *testing.B, f func()) {
	ran := false
	for b.Loop() {
		if !ran {
			ran = true
			f()
		}
	}
}

func reportTTI(b *testing.B, lat []time.Duration, wall time.Duration) {
	s := slices.Clone(lat)
	slices.Sort(s)
	b.ReportMetric(ms(percentile(s, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(s, 95)), "p95-ms")
	if wall > 0 {
		b.ReportMetric(ms(wall), "wall-ms")
		b.ReportMetric(ms(s[0]), "first-ms")
	}
}

// phaseSums is what /metrics says of the creates' phases so far: per phase,
// the count and sum of its wall time, and its CPU time.
type phaseSums map[string]struct{ n, wall, cpu float64 }

// startPhases reads the phases of creates (kind "create") from d's /metrics.
func startPhases(t testing.TB, d *Daemon) phaseSums {
	t.Helper()
	out := phaseSums{}
	for _, line := range strings.Split(metricsText(t, d), "\n") {
		name, rest, ok := strings.Cut(line, "{")
		if !ok || !strings.HasPrefix(name, "sandboxd_start_phase_") {
			continue
		}
		labels, value, _ := strings.Cut(rest, "} ")
		phase, ok := strings.CutPrefix(labels, `kind="create",phase="`)
		if !ok {
			continue
		}
		phase = strings.TrimSuffix(phase, `"`)
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			t.Fatalf("/metrics: %q: %v", line, err)
		}
		s := out[phase]
		switch name {
		case "sandboxd_start_phase_duration_seconds_count":
			s.n = v
		case "sandboxd_start_phase_duration_seconds_sum":
			s.wall = v
		case "sandboxd_start_phase_cpu_seconds_total":
			s.cpu = v
		}
		out[phase] = s
	}
	return out
}

// reportPhases reports each phase's mean wall time between two readings
// of startPhases ("<phase>-ms") and, if cpu, its mean CPU time
// ("<phase>-cpu-ms").
func reportPhases(b *testing.B, before, after phaseSums, cpu bool) {
	if len(after) == 0 {
		b.Fatal("/metrics has no start phases")
	}
	for phase, a := range after {
		p := before[phase]
		n := a.n - p.n
		if n <= 0 {
			continue
		}
		b.ReportMetric(1000*(a.wall-p.wall)/n, phase+"-ms")
		if cpu {
			b.ReportMetric(1000*(a.cpu-p.cpu)/n, phase+"-cpu-ms")
		}
	}
}
