package e2e

import (
	"slices"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/internal/daemon"
)

// BenchmarkColdCreateDiskQuota: what the disk quota adds to a cold create
// (the first Exec("true") on a new ID, as in BenchmarkColdCreate). Two
// daemons run side by side, one with the default quota (a 10 GiB sparse
// ext4 file formatted and loop-mounted per sandbox) and one
// without (the writable layer on the host's disk); each iteration creates
// one sandbox in each, in alternating order, so that both see the same
// load on a noisy machine. Reports the p50/p99 of each ("quota-p50-ms",
// "noquota-p50-ms"...) and of their difference per pair ("added-p50-ms").
//
//	go test -run '^$' -bench BenchmarkColdCreateDiskQuota -benchtime 20x ./e2e/
func BenchmarkColdCreateDiskQuota(b *testing.B) {
	quota := StartDaemon(b)
	noQuota := StartDaemon(b, func(c *daemon.Config) { c.DiskMB = -1 })
	ctx := ctxT(b, 10*time.Minute)
	create := func(d *Daemon, id string) time.Duration {
		start := time.Now()
		res, err := d.Client.Get(id).Exec(ctx, "true", nil)
		took := time.Since(start)
		if err != nil {
			b.Fatalf("exec in new sandbox %s: %v", id, err)
		}
		if res.ExitCode != 0 {
			b.Fatalf("true in %s: exit %d: %s", id, res.ExitCode, res.Stderr)
		}
		return took
	}
	// A first quota sandbox, not timed, warms the caches (mkfs.ext4).
	create(quota, benchID("quota-warm", 0))
	destroySandboxes(b, quota, benchID("quota-warm", 0))
	var withQ, withoutQ, added []time.Duration
	i := 0
	b.ResetTimer()
	for b.Loop() {
		idQ, idN := benchID("quota", i), benchID("noquota", i)
		var q, n time.Duration
		if i%2 == 0 {
			q, n = create(quota, idQ), create(noQuota, idN)
		} else {
			n, q = create(noQuota, idN), create(quota, idQ)
		}
		i++
		withQ, withoutQ, added = append(withQ, q), append(withoutQ, n), append(added, q-n)
		b.StopTimer()
		destroySandboxes(b, quota, idQ)
		destroySandboxes(b, noQuota, idN)
		b.StartTimer()
	}
	for _, m := range []struct {
		name string
		ds   []time.Duration
	}{{"quota", withQ}, {"noquota", withoutQ}, {"added", added}} {
		s := slices.Clone(m.ds)
		slices.Sort(s)
		b.ReportMetric(ms(percentile(s, 50)), m.name+"-p50-ms")
		b.ReportMetric(ms(percentile(s, 99)), m.name+"-p99-ms")
	}
}
