package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
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
	time.Sleep(fleetIdle)
	if err := execTrue(ctx, one); err != nil { // awake again, as it is in the loop
		b.Fatal(err)
	}

	measureFleet(b, func(i int) error {
		if err := execTrue(ctx, fleet[i]); err != nil {
			return fmt.Errorf("%s: %w", fleet[i].ID(), err)
		}
		return nil
	}, func() error { return execTrue(ctx, one) })
}

// trueServerEnv, set, makes this test binary a server of the machine's
// reference for BenchmarkExecRoundTrip300 (serveTrue) in place of the
// tests.
const trueServerEnv = "SANDBOXD_E2E_TRUE_SERVER"

// BenchmarkBaselineRoundTrip300 is ExecRoundTrip300's reference on this
// machine, without sandboxd: 301 pairs of long-lived processes shaped like
// a sandbox's agent and session shell, each a small Go HTTP server on a
// Unix socket (this test binary run again, serveTrue) that answers a
// request by having its bash run "true", called the same way as the
// sandboxes are there. Its ratio is what a call to one of 300 idle process
// pairs costs beside a call to one kept busy, whatever they run: caches,
// TLB and, on a paravirtualized guest, page tables rebuilt for a process
// switched back in; the part of the fleet's ratio that no daemon or agent
// change removes.
func BenchmarkBaselineRoundTrip300(b *testing.B) {
	dir := b.TempDir()
	clients := make([]*http.Client, fleetSize+1)
	for i := range clients {
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, strconv.Itoa(i)), Net: "unix"})
		if err != nil {
			b.Fatal(err)
		}
		f, err := ln.File()
		ln.SetUnlinkOnClose(false) // the server has it now
		ln.Close()
		if err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), trueServerEnv+"=1")
		cmd.ExtraFiles = []*os.File{f} // fd 3
		cmd.Stderr = os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		err = cmd.Start()
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
		sock := ln.Addr().String()
		tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}}
		b.Cleanup(tr.CloseIdleConnections)
		clients[i] = &http.Client{Transport: tr}
	}
	call := func(i int) error {
		resp, err := clients[i].Post("http://server/true", "", nil)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("server %d: %s: %s", i, resp.Status, body)
		}
		return err
	}
	for i := range clients {
		for range 3 { // as the fleet's sandboxes are warmed up
			if err := call(i); err != nil {
				b.Fatal(err)
			}
		}
	}
	time.Sleep(fleetIdle)
	if err := call(fleetSize); err != nil {
		b.Fatal(err)
	}
	measureFleet(b, call, func() error { return call(fleetSize) })
}

// serveTrue serves HTTP on the listener at fd 3 until it is killed,
// answering each request by having a bash of its own, started once, run
// "true" and report its status, as a session's shell does for the agent.
func serveTrue() {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ln, err := net.FileListener(os.NewFile(3, "listener"))
	if err != nil {
		fail(err)
	}
	sh := exec.Command("bash", "-c", `while read -r c; do eval "$c"; echo $?; done`)
	sh.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := sh.StdinPipe()
	if err != nil {
		fail(err)
	}
	out, err := sh.StdoutPipe()
	if err != nil {
		fail(err)
	}
	if err := sh.Start(); err != nil {
		fail(err)
	}
	status := bufio.NewReader(out)
	var mu sync.Mutex
	err = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		_, err := io.WriteString(in, "true\n")
		var line string
		if err == nil {
			line, err = status.ReadString('\n')
		}
		if err == nil && line != "0\n" {
			err = fmt.Errorf("true: status %q", line)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	}))
	fail(err)
}

// measureFleet times b.N iterations of two calls each, untimed between
// them: callFleet(i) to the next member i of a shuffled order of a fleet of
// fleetSize, and callOne to a single member called at every iteration, in
// alternating order so that both see the same noise. It reports p50/p99 of
// each and their ratios (fleet over single).
func measureFleet(b *testing.B, callFleet func(i int) error, callOne func() error) {
	b.Helper()
	order := rand.Perm(fleetSize)
	var many, single []time.Duration
	call := func(f func() error, into *[]time.Duration) {
		start := time.Now()
		err := f()
		*into = append(*into, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
	}
	i := 0
	for b.Loop() {
		member := order[i%fleetSize]
		fleetCall := func() error { return callFleet(member) }
		if i%2 == 0 {
			call(fleetCall, &many)
			call(callOne, &single)
		} else {
			call(callOne, &single)
			call(fleetCall, &many)
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
