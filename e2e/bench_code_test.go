package e2e

// Code interpreter latencies, reported as p50/p99 like bench_test.go:
//
//	go test -run '^$' -bench 'BenchmarkCode' -benchtime 100x ./e2e/
//
// BenchmarkCodeRunRoundTrip: runCode("1+1") in a warm context, per
// language. BenchmarkCodeCreateContext: creating a context with the
// executors warm (the Python zygote running, a spare Node ready), then
// deleting it untimed. BenchmarkCodeBaselinePythonStart: `python3 -c 1+1`
// through exec in the same kind of sandbox, what a context would cost
// without pre-warming (a bare interpreter, before any import).

import (
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/sandbox"
)

func BenchmarkCodeRunRoundTrip(b *testing.B) {
	d := StartDaemon(b)
	ctx := ctxT(b, 10*time.Minute)
	sb := d.Client.Get(benchID("code-run", 0))
	for _, lang := range []string{api.LanguagePython, api.LanguageJavaScript} {
		b.Run(lang, func(b *testing.B) {
			c, err := sb.CreateCodeContext(ctx, &sandbox.CodeContextOptions{Language: lang})
			if err != nil {
				b.Fatal(err)
			}
			opts := &sandbox.RunCodeOptions{ContextID: c.ID}
			for range 5 { // warm the interpreter and the connections
				if _, err := sb.RunCode(ctx, "1+1", opts); err != nil {
					b.Fatal(err)
				}
			}
			var lat []time.Duration
			for b.Loop() {
				start := time.Now()
				res, err := sb.RunCode(ctx, "1+1", opts)
				lat = append(lat, time.Since(start))
				if err != nil {
					b.Fatal(err)
				}
				if res.Text() != "2" {
					b.Fatalf("1+1: %+v %+v", res.Results, res.Error)
				}
			}
			reportLatencies(b, lat)
		})
	}
}

func BenchmarkCodeCreateContext(b *testing.B) {
	d := StartDaemon(b)
	ctx := ctxT(b, 10*time.Minute)
	sb := d.Client.Get(benchID("code-create", 0))
	for _, lang := range []string{api.LanguagePython, api.LanguageJavaScript} {
		b.Run(lang, func(b *testing.B) {
			opts := &sandbox.CodeContextOptions{Language: lang}
			// The first context of a language starts its executors.
			c, err := sb.CreateCodeContext(ctx, opts)
			if err != nil {
				b.Fatal(err)
			}
			if err := sb.DeleteCodeContext(ctx, c.ID); err != nil {
				b.Fatal(err)
			}
			var lat []time.Duration
			for b.Loop() {
				if lang == api.LanguageJavaScript {
					// Let the spare Node executor come back, as it does
					// between the creations of an agent at work.
					b.StopTimer()
					time.Sleep(150 * time.Millisecond)
					b.StartTimer()
				}
				start := time.Now()
				c, err := sb.CreateCodeContext(ctx, opts)
				lat = append(lat, time.Since(start))
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := sb.DeleteCodeContext(ctx, c.ID); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			reportLatencies(b, lat)
		})
	}
}

func BenchmarkCodeBaselinePythonStart(b *testing.B) {
	d := StartDaemon(b)
	ctx := ctxT(b, 10*time.Minute)
	sb := d.Client.Get(benchID("code-baseline", 0))
	for range 3 {
		if _, err := sb.Exec(ctx, `python3 -c "1+1"`, nil); err != nil {
			b.Fatal(err)
		}
	}
	var lat []time.Duration
	for b.Loop() {
		start := time.Now()
		res, err := sb.Exec(ctx, `python3 -c "1+1"`, nil)
		lat = append(lat, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		if res.ExitCode != 0 {
			b.Fatalf("python3: exit %d: %s", res.ExitCode, res.Stderr)
		}
	}
	reportLatencies(b, lat)
}
