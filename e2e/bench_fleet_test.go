package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/internal/runtime/runc"
	"github.com/sandboxd/sandboxd/sandbox"
)

const (
	// fleetSize is how many running sandboxes BenchmarkExecRoundTrip300
	// calls at random.
	fleetSize = 300
	// fleetWorkers bounds the creates and destroys running at once: a
	// few more than the daemon's start slots, to keep them busy.
	fleetWorkers = 16
	// fleetIdle is how long every sandbox of the fleet has seen no call
	// when the measurement begins.
	fleetIdle = 20 * time.Second
)

// BenchmarkExecRoundTrip300: Exec("true") round trips to 300 running,
// warmed-up sandboxes called at random, against one sandbox called
// repeatedly, in the same run (no warm pool, so the 300 are cold creates).
// Each iteration makes two calls, untimed between them: one to the next
// sandbox of a shuffled order of the fleet, and one to the single sandbox
// (a 301st), in alternating order so that both see the same noise.
//
// The fleet is idle for fleetIdle before the measurement, so each of its
// calls reaches a sandbox that has not been called for a while, as in a
// big fleet where each sandbox sees a call now and then; the single
// sandbox is called at every iteration.
//
// Reported: "p50-ms" and "p99-ms" of the fleet's calls, "one-p50-ms" and
// "one-p99-ms" of the single sandbox's, and their ratios "p50-ratio" and
// "p99-ratio" (fleet over single); ns/op is the mean of an iteration's two
// calls together. Creating and destroying the 301 sandboxes takes a minute
// or two on 2 CPUs; every one is destroyed, and checked for leftovers, also
// if the benchmark fails.
func BenchmarkExecRoundTrip300(b *testing.B) {
	d := StartDaemon(b, warmPool(0))
	ctx := ctxT(b, 20*time.Minute)
	ids := make([]string, fleetSize+1) // the fleet, then the single sandbox
	for i := range ids {
		ids[i] = benchID("fleet", i)
	}
	// Registered after StartDaemon's cleanup, so it runs first, with the
	// daemon still up.
	b.Cleanup(func() { destroyBounded(b, d, ids) })

	began := time.Now()
	if err := forEachBounded(ids, func(id string) error {
		sb := d.Client.Get(id)
		for range 3 { // create, then warm the session shell and connections
			if err := execTrue(ctx, sb); err != nil {
				return fmt.Errorf("%s: %w", id, err)
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d sandboxes created and warmed up in %v", len(ids), time.Since(began).Round(time.Millisecond))
	fleet := make([]*sandbox.Sandbox, fleetSize)
	for i := range fleet {
		fleet[i] = d.Client.Get(ids[i])
	}
	one := d.Client.Get(ids[fleetSize])
	order := rand.Perm(fleetSize)
	time.Sleep(fleetIdle)
	if err := execTrue(ctx, one); err != nil { // awake again, as it is in the loop
		b.Fatal(err)
	}

	var many, single []time.Duration
	call := func(sb *sandbox.Sandbox, into *[]time.Duration) {
		start := time.Now()
		err := execTrue(ctx, sb)
		*into = append(*into, time.Since(start))
		if err != nil {
			b.Fatalf("%s: %v", sb.ID(), err)
		}
	}
	i := 0
	for b.Loop() {
		sb := fleet[order[i%fleetSize]]
		if i%2 == 0 {
			call(sb, &many)
			call(one, &single)
		} else {
			call(one, &single)
			call(sb, &many)
		}
		i++
	}
	b.StopTimer()
	reportLatencies(b, many)
	ps, po := slices.Clone(many), slices.Clone(single)
	slices.Sort(ps)
	slices.Sort(po)
	b.ReportMetric(ms(percentile(po, 50)), "one-p50-ms")
	b.ReportMetric(ms(percentile(po, 99)), "one-p99-ms")
	b.ReportMetric(float64(percentile(ps, 50))/float64(percentile(po, 50)), "p50-ratio")
	b.ReportMetric(float64(percentile(ps, 99))/float64(percentile(po, 99)), "p99-ratio")
}

// forEachBounded runs fn on every ID, fleetWorkers at a time, and returns
// the errors joined.
func forEachBounded(ids []string, fn func(id string) error) error {
	work := make(chan string)
	errs := make([]error, fleetWorkers)
	var wg sync.WaitGroup
	for w := range fleetWorkers {
		wg.Go(func() {
			for id := range work {
				errs[w] = errors.Join(errs[w], fn(id))
			}
		})
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
	return errors.Join(errs...)
}

// destroyBounded destroys ids (existing or not), fleetWorkers at a time,
// and checks that nothing of them is left on the host.
func destroyBounded(b *testing.B, d *Daemon, ids []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	err := forEachBounded(ids, func(id string) error {
		if err := d.Client.Get(id).Destroy(ctx); err != nil {
			return fmt.Errorf("destroy %s: %w", id, err)
		}
		if left := runc.Leftovers(d.DataDir, id); len(left) > 0 {
			return fmt.Errorf("left after destroying %s: %v", id, left)
		}
		return nil
	})
	if err != nil {
		b.Error(err)
	}
}
