package e2e

// Warm pool, burst and memory benchmarks (see bench_test.go for how the
// percentiles are reported):
//
//	go test -run '^$' -bench 'BenchmarkPool|BenchmarkBurst100|BenchmarkIdleMemory' -benchtime 20x ./e2e/

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/internal/runtime/runc"
	"github.com/sandboxd/sandboxd/internal/testutil"
)

// benchCreateExec times the first Exec("true") on new IDs, with the daemon
// configured by opts; before each iteration, untimed, the warm pool (if
// any) is full again, and after it the sandbox is destroyed.
func benchCreateExec(b *testing.B, pool int) {
	d := StartDaemon(b, warmPool(pool))
	ctx := ctxT(b, 10*time.Minute)
	var lat []time.Duration
	i := 0
	for b.Loop() {
		b.StopTimer()
		if pool > 0 {
			waitReady(b, d, pool)
		}
		id := benchID(fmt.Sprintf("pool%d", pool), i)
		i++
		b.StartTimer()
		start := time.Now()
		res, err := d.Client.Get(id).Exec(ctx, "true", nil)
		lat = append(lat, time.Since(start))
		b.StopTimer()
		if err != nil {
			b.Fatalf("exec in new sandbox %s: %v", id, err)
		}
		if res.ExitCode != 0 {
			b.Fatalf("true in %s: exit %d: %s", id, res.ExitCode, res.Stderr)
		}
		if err := d.Client.Get(id).Destroy(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	reportLatencies(b, lat)
}

// BenchmarkPoolCreateExec: create -> first exec of a new ID with a warm
// pool of 2 (the claim, the hostname change, the session's bash start and
// the command). Target: p50 under 10 ms, p99 under 50 ms.
func BenchmarkPoolCreateExec(b *testing.B) { benchCreateExec(b, 2) }

// BenchmarkPoolOffCreateExec: the same without a pool (--warm-pool 0): a
// cold create of the container.
func BenchmarkPoolOffCreateExec(b *testing.B) { benchCreateExec(b, 0) }

// BenchmarkBurst100: per batch, 100 goroutines each make a new sandbox by
// exec'ing "true" at once, with a warm pool of 2; every one must succeed.
// It reports the p50/p99 of the single calls over all batches and the p50
// of the batches' wall time ("batch-ms"). At most 2 batches run, whatever
// b.N (each is 100 sandboxes and their destruction).
func BenchmarkBurst100(b *testing.B) {
	b.StopTimer()
	d := StartDaemon(b, warmPool(2))
	ctx := ctxT(b, 20*time.Minute)
	const n = 100
	var lat, walls []time.Duration
	for batch := range min(b.N, 2) {
		waitReady(b, d, 2)
		ids, durs, errs, wall := firstExecBurst(b, d, ctx, fmt.Sprintf("burst%d", batch), n)
		walls = append(walls, wall)
		for j, err := range errs {
			if err != nil {
				b.Errorf("%s: %v", ids[j], err)
			}
		}
		if b.Failed() {
			b.FailNow()
		}
		lat = append(lat, durs...)
		slices.Sort(durs)
		b.Logf("batch %d: 100 of 100 succeeded; wall %v, p50 %v, p99 %v", batch, walls[len(walls)-1], percentile(durs, 50), percentile(durs, 99))
		destroySandboxes(b, d, ids...)
	}
	reportLatencies(b, lat)
	slices.Sort(walls)
	b.ReportMetric(ms(percentile(walls, 50)), "batch-ms")
}

// BenchmarkIdleMemory: the host memory of idle running sandboxes, agent
// and the default session's bash included (each ran one command, then
// settled for 3 s). Per sandbox, from its memory cgroup: "cgroup-MiB" is
// memory.usage_in_bytes (anonymous memory and the page cache charged to
// it, like the files it read from the image), "rss-MiB" is memory.stat's
// total_rss (anonymous memory only); and "pss-MiB" is the sum of the
// proportional set size (smaps_rollup) of its processes, which shares
// pages used by several sandboxes (the agent binary, libc, bash) among
// them. It reports the mean over 10 sandboxes (ns/op is meaningless here).
// Target: under 10 MiB per idle running sandbox.
func BenchmarkIdleMemory(b *testing.B) {
	b.StopTimer()
	d := StartDaemon(b, warmPool(0)) // the runtime names are the IDs
	ctx := ctxT(b, 10*time.Minute)
	const n = 10
	ids := make([]string, n)
	for i := range ids {
		ids[i] = benchID("mem", i)
		if _, err := d.Client.Get(ids[i]).Exec(ctx, "true", nil); err != nil {
			b.Fatal(err)
		}
	}
	for range b.N {
	}
	time.Sleep(3 * time.Second)
	var cg, rss, pss float64
	for _, id := range ids {
		dir := "/sys/fs/cgroup/memory" + runc.CgroupPath(d.DataDir, id)
		usage, err := readInt(filepath.Join(dir, "memory.usage_in_bytes"))
		testutil.Requires(b, err == nil, fmt.Sprintf("no cgroup v1 memory controller here: %v", err))
		cg += float64(usage)
		stat, err := os.ReadFile(filepath.Join(dir, "memory.stat"))
		if err != nil {
			b.Fatal(err)
		}
		rss += float64(statField(stat, "total_rss"))
		procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range strings.Fields(string(procs)) {
			pss += float64(pssOf(p))
		}
	}
	const mib = 1 << 20
	b.ReportMetric(cg/n/mib, "cgroup-MiB")
	b.ReportMetric(rss/n/mib, "rss-MiB")
	b.ReportMetric(pss/n/mib, "pss-MiB")
	b.Logf("per idle sandbox: cgroup %.1f MiB, rss %.1f MiB, pss %.1f MiB", cg/n/mib, rss/n/mib, pss/n/mib)
	destroySandboxes(b, d, ids...)
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// statField returns a field of a memory.stat file, in bytes.
func statField(stat []byte, name string) int64 {
	sc := bufio.NewScanner(bytes.NewReader(stat))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// pssOf returns the PSS of process pid in bytes (0 if it is gone).
func pssOf(pid string) int64 {
	b, err := os.ReadFile("/proc/" + pid + "/smaps_rollup")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Pss:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
