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
// from the release of all 100 to each one's answer) and "wall-ms" for a
// burst; ns/op is meaningless here. A sequence is b.N sandboxes (make
// bench's -benchtime 100x: 100); a burst is 100 whatever b.N. The pool
// cases run with the default warm pool (2); the others with none.

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

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
	for _, pool := range []int{0, 2} {
		name := "cold"
		if pool > 0 {
			name = "pool"
		}
		b.Run(name+"-seq", func(b *testing.B) {
			d := StartDaemon(b, warmPool(pool))
			ctx := ctxT(b, 10*time.Minute)
			var lat []time.Duration
			i := 0
			for b.Loop() {
				i++
				if pool > 0 {
					waitReady(b, d, pool)
				}
				id := benchID("tti-"+name, i)
				start := time.Now()
				if err := nodeV(ctx, d, id); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
				destroySandboxes(b, d, id)
			}
			reportTTI(b, lat, 0)
		})
		b.Run(name+"-burst", func(b *testing.B) {
			d := StartDaemon(b, warmPool(pool))
			ctx := ctxT(b, 10*time.Minute)
			if pool > 0 {
				waitReady(b, d, pool)
			}
			ids := make([]string, ttiN)
			for i := range ids {
				ids[i] = benchID("ttib-"+name, i)
			}
			once(b, func() {
				lat, wall := ttiBurst(b, func(i int) error { return nodeV(ctx, d, ids[i]) })
				reportTTI(b, lat, wall)
			})
			destroySandboxes(b, d, ids...)
		})
	}
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
	}
}
