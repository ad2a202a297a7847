package e2e

import (
	"strconv"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/sandbox"
)

// BenchmarkWake: the latency of the first call to a sleeping sandbox
// (sleeping -> Exec("true") answered: the container starts again over the
// sandbox's files, the agent answers, the command runs), next to a cold
// create (a new ID's first Exec("true"), no warm pool) in the same run.
//
//	go test -run '^$' -bench BenchmarkWake -benchtime 20x ./e2e/
//
// Each "wake" iteration wakes one of a few sandboxes whose sleepAfter is
// 1s, waiting (untimed) for it to fall asleep first.
func BenchmarkWake(b *testing.B) {
	d := StartDaemon(b)
	ctx := ctxT(b, 20*time.Minute)

	b.Run("cold-create", func(b *testing.B) {
		var lat []time.Duration
		i := 0
		for b.Loop() {
			id := benchID("wakecold", i)
			i++
			start := time.Now()
			_, err := d.Client.Get(id).Exec(ctx, "true", nil)
			lat = append(lat, time.Since(start))
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			destroySandboxes(b, d, id)
			b.StartTimer()
		}
		reportLatencies(b, lat)
	})

	b.Run("wake", func(b *testing.B) {
		const n = 4
		var sbs []*sandbox.Sandbox
		var ids []string
		for i := range n {
			id := benchID("wake", i)
			sb, err := d.Client.Create(ctx, id, &api.CreateSandboxRequest{SleepAfter: "1s"})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := sb.WriteFile(ctx, "/workspace/f", []byte("x"), nil); err != nil {
				b.Fatal(err)
			}
			sbs, ids = append(sbs, sb), append(ids, id)
		}
		b.Cleanup(func() { destroySandboxes(b, d, ids...) })
		var lat []time.Duration
		i := 0
		for b.Loop() {
			sb := sbs[i%n]
			i++
			b.StopTimer()
			for {
				info, err := sb.Info(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if info.Status == api.StatusSleeping {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			b.StartTimer()
			start := time.Now()
			res, err := sb.Exec(ctx, "true", nil)
			lat = append(lat, time.Since(start))
			if err != nil || res.ExitCode != 0 {
				b.Fatalf("wake %s: %+v %v", sb.ID(), res, err)
			}
		}
		reportLatencies(b, lat)
		// The daemon's share: the container's start until its agent
		// answers (the rest is the first command: a fresh shell).
		sum, _ := strconv.ParseFloat(metric(b, d, "sandboxd_wake_duration_seconds_sum"), 64)
		count, _ := strconv.ParseFloat(metric(b, d, "sandboxd_wake_duration_seconds_count"), 64)
		if count > 0 {
			b.ReportMetric(sum/count*1000, "start-mean-ms")
		}
	})
}
