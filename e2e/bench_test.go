package e2e

// Latency benchmarks: a real daemon (StartDaemon) driven through the SDK,
// next to a bare runc baseline on the same image, in the same run.
//
//	make bench    (go test -run '^$' -bench . -benchtime 100x -count 1 ./e2e/)
//
// Each benchmark reports the p50 and p99 of one duration per iteration
// ("p50-ms", "p99-ms"); ns/op is their mean. With -benchtime 20x the p99 is
// the slowest of the 20 (nearest rank), so read it as "max of 20", not as a
// tail estimate: use -benchtime 100x or more for a real p99.
//
// Every benchmark but BenchmarkConcurrentCreates20 and the cases of
// BenchmarkExecStreamThroughput uses b.Loop, so its setup (a daemon, a warm
// sandbox) runs once however many iterations.
// BenchmarkConcurrentCreates20 runs at most maxConcurrentBatches batches of
// 20 creates whatever b.N is, and each case of BenchmarkExecStreamThroughput
// streams its 1 GiB once (see there); their ns/op is per batch or stream.
//
// Throughput and memory (BenchmarkExecStreamThroughput) report "MiB/s",
// "baseline-MiB/s" and "peak-rss-growth-MiB" instead of percentiles.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/runtime"
	"github.com/sandboxd/sandboxd/internal/runtime/runc"
	"github.com/sandboxd/sandboxd/internal/testutil"
	"github.com/sandboxd/sandboxd/sandbox"
)

// percentile returns the p-th percentile (0 < p <= 100) of ds by the
// nearest-rank method: the smallest value with at least p% of the values at
// or below it. ds must be sorted.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(ds)))) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// reportLatencies reports the p50 and p99 of ds as "p50-ms" and "p99-ms".
func reportLatencies(b *testing.B, ds []time.Duration) {
	b.Helper()
	if len(ds) == 0 {
		b.Fatal("no latencies collected")
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	b.ReportMetric(ms(percentile(s, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(s, 99)), "p99-ms")
}

// benchIDs makes sandbox and container IDs unique to this process, since
// cgroup paths (/sandboxd/<id>) are shared by everything on the host.
var benchTag = fmt.Sprintf("%08x", rand.Uint32())

func benchID(kind string, i int) string { return fmt.Sprintf("bench-%s-%s-%d", kind, benchTag, i) }

// destroySandboxes destroys ids concurrently and checks that nothing of
// them is left on the host.
func destroySandboxes(b *testing.B, d *Daemon, ids ...string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() {
			if err := d.Client.Get(id).Destroy(ctx); err != nil {
				b.Errorf("destroy %s: %v", id, err)
				return
			}
			if left := runc.Leftovers(d.DataDir, id); len(left) > 0 {
				b.Errorf("left after destroying %s: %v", id, left)
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
}

// BenchmarkColdCreate: the first Exec("true") on a new sandbox ID, which
// creates and starts the sandbox (overlay, container, agent) and runs the
// command. The sandbox is destroyed after each iteration, untimed.
func BenchmarkColdCreate(b *testing.B) {
	d := StartDaemon(b)
	ctx := ctxT(b, 10*time.Minute)
	var lat []time.Duration
	i := 0
	for b.Loop() {
		id := benchID("cold", i)
		i++
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
		destroySandboxes(b, d, id)
		b.StartTimer()
	}
	reportLatencies(b, lat)
}

// BenchmarkExecRoundTrip: Exec("true") in one running, warmed-up sandbox.
func BenchmarkExecRoundTrip(b *testing.B) {
	d := StartDaemon(b)
	ctx := ctxT(b, 10*time.Minute)
	sb := d.Client.Get(benchID("exec", 0))
	for range 5 { // create, then warm the session shell and connections
		if _, err := sb.Exec(ctx, "true", nil); err != nil {
			b.Fatal(err)
		}
	}
	var lat []time.Duration
	for b.Loop() {
		start := time.Now()
		res, err := sb.Exec(ctx, "true", nil)
		lat = append(lat, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		if res.ExitCode != 0 {
			b.Fatalf("true: exit %d: %s", res.ExitCode, res.Stderr)
		}
	}
	reportLatencies(b, lat)
}

const (
	concurrentCreates = 20
	// maxConcurrentBatches caps BenchmarkConcurrentCreates20's batches,
	// whatever b.N: each batch makes 20 sandboxes (~1.3 s with their
	// destruction on 2 cores), so -benchtime 100x would otherwise make
	// 2000. 10 batches give 200 creates, enough for a p99 (the third
	// slowest), in ~15 s.
	maxConcurrentBatches = 10
)

// BenchmarkConcurrentCreates20: per batch, 20 goroutines each create a new
// sandbox by exec'ing "true" at once. It reports the p50/p99 of the single
// creates over all batches, the p50 of the batches' wall time ("batch-ms")
// and how many batches ran ("batches"); ns/op is the mean batch wall time.
// It runs min(b.N, maxConcurrentBatches) batches. (Being a classic b.N
// benchmark, the testing package first calls it with b.N = 1, a batch that
// then serves as warm-up and whose numbers are discarded.)
func BenchmarkConcurrentCreates20(b *testing.B) {
	b.StopTimer()
	d := StartDaemon(b)
	ctx := ctxT(b, 10*time.Minute)
	batches := min(b.N, maxConcurrentBatches)
	var lat, walls []time.Duration
	var total time.Duration
	for n := range batches {
		ids, durs, errs, wall := firstExecBurst(b, d, ctx, fmt.Sprintf("conc%d", n), concurrentCreates)
		if err := errors.Join(errs...); err != nil {
			b.Fatal(err) // the daemon's cleanup destroys what was made
		}
		lat = append(lat, durs...)
		walls = append(walls, wall)
		total += wall
		destroySandboxes(b, d, ids...)
	}
	reportLatencies(b, lat)
	slices.Sort(walls)
	b.ReportMetric(ms(percentile(walls, 50)), "batch-ms")
	b.ReportMetric(float64(batches), "batches")
	b.ReportMetric(float64(total.Nanoseconds())/float64(batches), "ns/op")
}

// firstExecBurst makes n new sandboxes at once, each by a first exec of
// "true" on an ID of its own (prefix and a number), timing only the burst.
// It returns the IDs, each call's latency and error, and the wall time.
func firstExecBurst(b *testing.B, d *Daemon, ctx context.Context, prefix string, n int) (ids []string, durs []time.Duration, errs []error, wall time.Duration) {
	ids = make([]string, n)
	durs = make([]time.Duration, n)
	errs = make([]error, n)
	release := make(chan struct{})
	var wg sync.WaitGroup
	for j := range ids {
		ids[j] = benchID(prefix, j)
		wg.Go(func() {
			<-release
			start := time.Now()
			res, err := d.Client.Get(ids[j]).Exec(ctx, "true", nil)
			durs[j] = time.Since(start)
			if err == nil && res.ExitCode != 0 {
				err = fmt.Errorf("true: exit %d: %s", res.ExitCode, res.Stderr)
			}
			errs[j] = err
		})
	}
	b.StartTimer()
	start := time.Now()
	close(release)
	wg.Wait()
	wall = time.Since(start)
	b.StopTimer()
	return ids, durs, errs, wall
}

// BenchmarkBaselineRuncRun: a bare "runc run" of /bin/true on the default
// image, as the floor under BenchmarkColdCreate: runc's default spec (as
// "runc spec" writes it) with the sandboxes' default memory and pids
// limits, the image directory itself as the read-only rootfs; no overlay,
// user namespace, seccomp profile, agent or daemon.
func BenchmarkBaselineRuncRun(b *testing.B) {
	rb := newRuncBaseline(b)
	ctx := ctxT(b, 10*time.Minute)
	var lat []time.Duration
	for b.Loop() {
		b.StopTimer()
		id := rb.bundle(rb.image, true)
		b.StartTimer()
		start := time.Now()
		err := rb.run(ctx, id)
		lat = append(lat, time.Since(start))
		b.StopTimer()
		rb.remove(id)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	reportLatencies(b, lat)
}

// BenchmarkBaselineRuncOverlayRun: BenchmarkBaselineRuncRun over an overlay
// of the image (plain, not idmapped) with a fresh upper directory each time,
// writable as a sandbox's is. Timed: creating the upper, work and mount
// directories, mounting the overlay, runc run, unmounting.
func BenchmarkBaselineRuncOverlayRun(b *testing.B) {
	rb := newRuncBaseline(b)
	ctx := ctxT(b, 10*time.Minute)
	var lat []time.Duration
	for b.Loop() {
		b.StopTimer()
		layers := filepath.Join(rb.dir, "layers", fmt.Sprint(rb.seq))
		rootfs := filepath.Join(layers, "rootfs")
		id := rb.bundle(rootfs, false)
		b.StartTimer()
		start := time.Now()
		err := rb.runOverlay(ctx, id, layers, rootfs)
		lat = append(lat, time.Since(start))
		b.StopTimer()
		rb.remove(id)
		if err := unmountUnder(layers); err != nil {
			b.Fatal(err)
		}
		if err := os.RemoveAll(layers); err != nil {
			b.Fatal(err)
		}
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	reportLatencies(b, lat)
}

// runcBaseline runs bare runc containers with their own state directory
// (--root) in a temporary directory, all removed when the benchmark ends.
type runcBaseline struct {
	b     *testing.B
	runc  string
	image string   // the default image, symlinks resolved
	dir   string   // bundles/, layers/
	state string   // runc --root
	args  []string // the container's command (default /bin/true)
	seq   int
}

func newRuncBaseline(b *testing.B) *runcBaseline {
	b.Helper()
	testutil.RequiresRoot(b)
	image, err := filepath.EvalSymlinks(testutil.DefaultImage(b))
	if err != nil {
		b.Fatal(err)
	}
	bin, err := exec.LookPath("runc")
	if err != nil {
		b.Fatal(err)
	}
	rb := &runcBaseline{b: b, runc: bin, image: image, dir: testutil.TempDir(b)}
	rb.state = filepath.Join(rb.dir, "state")
	for _, d := range []string{rb.state, filepath.Join(rb.dir, "bundles"), filepath.Join(rb.dir, "layers")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			b.Fatal(err)
		}
	}
	// Registered after TempDir's removal, so it runs before it.
	b.Cleanup(rb.cleanup)
	return rb
}

// bundle writes the bundle of a new container whose root is rootfs and
// returns the container's ID.
func (rb *runcBaseline) bundle(rootfs string, readonly bool) string {
	rb.b.Helper()
	id := benchID("runc", rb.seq)
	rb.seq++
	dir := filepath.Join(rb.dir, "bundles", id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		rb.b.Fatal(err)
	}
	spec := baselineSpec(rootfs, readonly, "/sandboxd/"+id)
	if rb.args != nil {
		spec.Process.Args = rb.args
	}
	cfg, err := json.Marshal(spec)
	if err != nil {
		rb.b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o600); err != nil {
		rb.b.Fatal(err)
	}
	return id
}

// run runs container id in the foreground until /bin/true exits; runc then
// deletes the container itself.
func (rb *runcBaseline) run(ctx context.Context, id string) error {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, rb.runc, "--root", rb.state, "run", "--bundle", filepath.Join(rb.dir, "bundles", id), id)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("runc run %s: %w: %s", id, err, strings.TrimSpace(out.String()))
	}
	return nil
}

// runOverlay mounts a fresh overlay of the image at rootfs, runs container
// id on it and unmounts it.
func (rb *runcBaseline) runOverlay(ctx context.Context, id, layers, rootfs string) error {
	upper, work := filepath.Join(layers, "upper"), filepath.Join(layers, "work")
	for _, d := range []string{upper, work, rootfs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", rb.image, upper, work)
	if err := unix.Mount("overlay", rootfs, "overlay", unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount overlay at %s: %w", rootfs, err)
	}
	err := rb.run(ctx, id)
	if uerr := unix.Unmount(rootfs, 0); uerr != nil {
		err = errors.Join(err, fmt.Errorf("unmount %s: %w", rootfs, uerr))
	}
	return err
}

// remove deletes container id if runc left it (a failed run) and its bundle.
func (rb *runcBaseline) remove(id string) {
	rb.b.Helper()
	if _, err := os.Stat(filepath.Join(rb.state, id)); err == nil {
		if out, err := exec.Command(rb.runc, "--root", rb.state, "delete", "--force", id).CombinedOutput(); err != nil {
			rb.b.Errorf("runc delete %s: %v: %s", id, err, out)
		}
	}
	if err := os.RemoveAll(filepath.Join(rb.dir, "bundles", id)); err != nil {
		rb.b.Error(err)
	}
}

// cleanup deletes every container in the state directory and unmounts
// everything under the temporary directory, so that removing it removes
// nothing but our own files.
func (rb *runcBaseline) cleanup() {
	out, err := exec.Command(rb.runc, "--root", rb.state, "list", "--quiet").Output()
	if err != nil {
		rb.b.Errorf("runc list: %v", err)
	}
	for _, id := range strings.Fields(string(out)) {
		if out, err := exec.Command(rb.runc, "--root", rb.state, "delete", "--force", id).CombinedOutput(); err != nil {
			rb.b.Errorf("runc delete %s: %v: %s", id, err, out)
		}
	}
	if err := unmountUnder(rb.dir); err != nil {
		rb.b.Error(err)
	}
}

// unmountUnder unmounts every mount at or below dir, deepest first.
func unmountUnder(dir string) error {
	info, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var mounts []string
	for _, line := range strings.Split(string(info), "\n") {
		if f := strings.Fields(line); len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			mounts = append(mounts, f[4])
		}
	}
	var errs []error
	for _, m := range slices.Backward(mounts) {
		if err := unix.Unmount(m, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
				errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
			}
		}
	}
	return errors.Join(errs...)
}

// baselineSpec is runc's default spec ("runc spec", runc 1.1) running
// /bin/true without a terminal, with the sandboxes' default memory and pids
// limits under cgroupsPath.
func baselineSpec(rootfs string, readonly bool, cgroupsPath string) *specs.Spec {
	caps := []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
	memory := int64(runtime.DefaultMemoryMB) << 20
	pids := int64(runtime.DefaultPids)
	return &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Args: []string{"/bin/true"},
			Env:  []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"},
			Cwd:  "/",
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps, Ambient: caps,
			},
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
			NoNewPrivileges: true,
		},
		Root:     &specs.Root{Path: rootfs, Readonly: readonly},
		Hostname: "runc",
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
		},
		Linux: &specs.Linux{
			CgroupsPath: cgroupsPath,
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
				Memory:  &specs.LinuxMemory{Limit: &memory},
				Pids:    &specs.LinuxPids{Limit: &pids},
			},
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace}, {Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.MountNamespace},
			},
			MaskedPaths: []string{
				"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
			},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
}

// benchSandbox returns a handle on a new sandbox of d, benchID(kind, 0),
// created and warmed up by a few Exec("true") calls. It is destroyed when
// the benchmark ends, before the daemon stops, also if the benchmark
// failed, and checked for leftovers on the host.
func benchSandbox(ctx context.Context, b *testing.B, d *Daemon, kind string) *sandbox.Sandbox {
	b.Helper()
	id := benchID(kind, 0)
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := d.Client.Get(id).Destroy(ctx); err != nil {
			b.Errorf("destroy %s: %v", id, err)
		} else if left := runc.Leftovers(d.DataDir, id); len(left) > 0 {
			b.Errorf("left after destroying %s: %v", id, left)
		}
	})
	sb := d.Client.Get(id)
	for range 5 { // create, then warm the session shell and connections
		if _, err := sb.Exec(ctx, "true", nil); err != nil {
			b.Fatal(err)
		}
	}
	return sb
}

// execTrue runs "true" through ex (a Sandbox or a Session) and checks it.
func execTrue(ctx context.Context, ex interface {
	Exec(context.Context, string, *sandbox.ExecOptions) (*api.ExecResult, error)
}) error {
	res, err := ex.Exec(ctx, "true", nil)
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("true: exit %d: %s", res.ExitCode, res.Stderr)
	}
	return nil
}

// BenchmarkExecStreamFirstByte: in a warm sandbox, the time from calling
// ExecStream(ctx, "echo x", nil) to receiving its first stdout event. The
// rest of the stream (the complete event) is drained, and checked, with the
// timer stopped: ns/op is the mean time to the first byte.
func BenchmarkExecStreamFirstByte(b *testing.B) {
	d := StartDaemon(b)
	ctx := ctxT(b, 10*time.Minute)
	sb := benchSandbox(ctx, b, d, "first")
	var lat []time.Duration
	for b.Loop() {
		start := time.Now()
		st, err := sb.ExecStream(ctx, "echo x", nil)
		if err != nil {
			b.Fatal(err)
		}
		var first []byte
		for st.Next() {
			if ev := st.Event(); ev.Type == api.EventStdout {
				first = ev.Data
				break
			}
		}
		lat = append(lat, time.Since(start))
		b.StopTimer()
		if first == nil {
			st.Close()
			b.Fatalf("no stdout event (stream error: %v)", st.Err())
		}
		res, err := st.Wait()
		if err != nil {
			b.Fatal(err)
		}
		if out := string(first) + res.Stdout; res.ExitCode != 0 || out != "x\n" {
			b.Fatalf("echo x: exit %d, stdout %q, stderr %q", res.ExitCode, out, res.Stderr)
		}
		b.StartTimer()
	}
	reportLatencies(b, lat)
}

// streamMiB is the size, in MiB, of each command's output in
// BenchmarkExecStreamThroughput: 1024 (1 GiB), or SANDBOXD_BENCH_STREAM_MIB.
func streamMiB(b *testing.B) int64 {
	b.Helper()
	s := os.Getenv("SANDBOXD_BENCH_STREAM_MIB")
	if s == "" {
		return 1024
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		b.Fatalf("SANDBOXD_BENCH_STREAM_MIB=%q: want a positive number of MiB", s)
	}
	return n
}

// isProbe reports whether this call of a classic (b.N) benchmark is the
// testing package's first call, with b.N = 1, that -benchtime Nx with N > 1
// always follows with a call with b.N = N, which alone is reported.
func isProbe(b *testing.B) bool {
	if b.N != 1 {
		return false
	}
	f := flag.Lookup("test.benchtime")
	if f == nil {
		return false
	}
	n, ok := strings.CutSuffix(f.Value.String(), "x")
	if !ok {
		return false
	}
	count, err := strconv.Atoi(n)
	return err == nil && count > 1
}

// procStatusKB returns a "kB" field of /proc/self/status, such as VmHWM.
func procStatusKB(b *testing.B, field string) int64 {
	b.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				b.Fatalf("/proc/self/status: %s: %v", line, err)
			}
			return kb
		}
	}
	b.Fatalf("/proc/self/status has no %s", field)
	return 0
}

// resetPeakRSS returns the process's memory to the OS as far as it can and
// resets its peak RSS (VmHWM) to its current RSS (Linux 4.0+), so that the
// next peak is this run's. It reports whether the reset worked; if not,
// VmHWM is the peak since the process started.
func resetPeakRSS() bool {
	debug.FreeOSMemory()
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// sandboxMemPeak returns the peak memory use (memory.max_usage_in_bytes,
// cgroup v1) of sandbox id's memory cgroup — the agent, the session shell
// and the command, with the kernel's pipe buffers — after resetting it if
// reset is set. ok is false where there is no such file (cgroup v2).
func sandboxMemPeak(d *Daemon, id string, reset bool) (n int64, ok bool) {
	f := filepath.Join("/sys/fs/cgroup/memory", runc.CgroupPath(d.DataDir, id), "memory.max_usage_in_bytes")
	if reset {
		if err := os.WriteFile(f, []byte("0"), 0); err != nil {
			return 0, false
		}
	}
	data, err := os.ReadFile(f)
	if err != nil {
		return 0, false
	}
	n, err = strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	return n, err == nil
}

// streamResult is what drainStream counted.
type streamResult struct {
	stdout, events int64 // decoded stdout bytes, stdout events
	stderr         string
	exitCode       int
}

// drainStream runs command through ExecStream and reads its stream to the
// end, counting the decoded stdout bytes without keeping them.
func drainStream(ctx context.Context, sb *sandbox.Sandbox, command string) (streamResult, error) {
	var r streamResult
	st, err := sb.ExecStream(ctx, command, nil)
	if err != nil {
		return r, err
	}
	complete := false
	for ev, err := range st.Events() {
		if err != nil {
			return r, err
		}
		switch ev.Type {
		case api.EventStdout:
			r.stdout += int64(len(ev.Data))
			r.events++
		case api.EventStderr:
			if len(r.stderr) < 4096 {
				r.stderr += string(ev.Data)
			}
		case api.EventComplete:
			r.exitCode, complete = ev.ExitCode, true
		}
	}
	if !complete {
		return r, errors.New("stream ended without a complete event")
	}
	return r, nil
}

// mibps is n bytes over d in MiB/s.
func mibps(n int64, d time.Duration) float64 { return float64(n) / (1 << 20) / d.Seconds() }

// BenchmarkExecStreamThroughput: one command writes 1 GiB to stdout
// (SANDBOXD_BENCH_STREAM_MIB changes the size) and the stream is drained
// through ExecStream, counting the decoded bytes of the stdout events
// without keeping them. Three cases, as sub-benchmarks, one sandbox:
//
//   - zero: head -c N /dev/zero. NUL is valid UTF-8, but its JSON escape
//     is six bytes, so the agent sends it base64 (4:3).
//   - text: yes abcdefghijklmnopqrstuvwxyz | head -c N: plain text, ~1:1.
//   - urandom: head -c N /dev/urandom: not UTF-8, travels base64 (4:3).
//
// Reported per case: "MiB/s" (decoded output over the time from the
// ExecStream call to the complete event), "baseline-MiB/s" (the same
// command with its output to /dev/null, run by Exec in the same sandbox
// and timed around the call: the command's own speed, the ceiling),
// "baseline-sandbox-cpu-ms/GiB" (the sandbox's CPU time for that run: the
// command's own cost, part of "sandbox-cpu-ms/GiB" below),
// "peak-rss-growth-MiB" (how far the test process's peak RSS, VmHWM, rose
// over its RSS before the stream: the daemon runs in-process, so it is
// daemon plus SDK; the peak is reset through /proc/self/clear_refs first),
// "sandbox-peak-MiB" (peak memory of the sandbox's cgroup during the
// stream: agent, shell, command and pipe buffers; cgroup v1 only),
// "chunk-KiB" (mean decoded bytes per stdout event) and ns/op (the
// stream's wall time).
//
// Each case transfers its gigabyte once per reported result whatever b.N
// (a timed run takes seconds; -benchtime 100x would take hours). Being a
// classic b.N benchmark, each case is first called with b.N = 1; under
// -benchtime Nx with N > 1 that call is followed by the reported one, so it
// only streams 1 MiB as a warm-up (see isProbe).
func BenchmarkExecStreamThroughput(b *testing.B) {
	size := streamMiB(b) << 20
	d := StartDaemon(b)
	ctx := ctxT(b, 30*time.Minute)
	// The machine's two CPUs, not the default one: the command, the shell
	// and the agent all run in the sandbox's cgroup, and this measures the
	// plumbing, not the default quota.
	if _, err := d.Client.Create(ctx, benchID("tput", 0), &api.CreateSandboxRequest{Resources: &api.Resources{CPUs: 2}}); err != nil {
		b.Fatal(err)
	}
	sb := benchSandbox(ctx, b, d, "tput")
	cases := []struct{ name, gen string }{
		{"zero", "head -c %d /dev/zero"},
		{"text", "yes abcdefghijklmnopqrstuvwxyz | head -c %d"},
		{"urandom", "head -c %d /dev/urandom"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.StopTimer()
			// Warm-up: connections, the session shell, the agent's buffers.
			warm := fmt.Sprintf(c.gen, 1<<20)
			if r, err := drainStream(ctx, sb, warm); err != nil || r.exitCode != 0 || r.stdout != 1<<20 {
				b.Fatalf("%s: %+v, %v", warm, r, err)
			}
			if isProbe(b) {
				return
			}
			cmd := fmt.Sprintf(c.gen, size)

			// The baseline: the command alone, output to /dev/null.
			bcpu0 := readCPU(d, sb.ID())
			start := time.Now()
			res, err := sb.Exec(ctx, cmd+" > /dev/null", nil)
			base := time.Since(start)
			bcpu1 := readCPU(d, sb.ID())
			if err != nil {
				b.Fatal(err)
			}
			if res.ExitCode != 0 {
				b.Fatalf("%s > /dev/null: exit %d: %s", cmd, res.ExitCode, res.Stderr)
			}

			resetOK := resetPeakRSS()
			rss0 := procStatusKB(b, "VmHWM")
			_, cgOK := sandboxMemPeak(d, sb.ID(), true)
			cpu0 := readCPU(d, sb.ID())
			b.StartTimer()
			start = time.Now()
			r, err := drainStream(ctx, sb, cmd)
			elapsed := time.Since(start)
			b.StopTimer()
			cpu1 := readCPU(d, sb.ID())
			rss1 := procStatusKB(b, "VmHWM")
			cgPeak, _ := sandboxMemPeak(d, sb.ID(), false)
			if err != nil {
				b.Fatal(err)
			}
			if r.exitCode != 0 || r.stdout != size {
				b.Fatalf("%s: exit %d, %d stdout bytes (want %d), stderr %q", cmd, r.exitCode, r.stdout, size, r.stderr)
			}
			if !resetOK {
				b.Log("could not reset VmHWM: peak-rss-growth-MiB is the growth of the process's lifetime peak")
			}
			b.ReportMetric(mibps(r.stdout, elapsed), "MiB/s")
			b.ReportMetric(mibps(size, base), "baseline-MiB/s")
			b.ReportMetric(float64(rss1-rss0)/1024, "peak-rss-growth-MiB")
			if cgOK {
				b.ReportMetric(float64(cgPeak)/(1<<20), "sandbox-peak-MiB")
			}
			b.ReportMetric(float64(r.stdout)/float64(r.events)/1024, "chunk-KiB")
			reportCPU(b, cpu0, cpu1, size, "")
			reportSandboxCPU(b, bcpu0, bcpu1, size, "baseline-")
			b.ReportMetric(float64(elapsed.Nanoseconds()), "ns/op")
			b.ReportMetric(1, "runs") // whatever the iterations column (b.N) says
		})
	}
}

const (
	concurrentSessions = 10
	execsPerSession    = 10
)

// BenchmarkConcurrentExec100Over10Sessions: one sandbox with 10 sessions
// created up front; per iteration, 100 concurrent Exec("true") calls, 10 on
// each session, released at once. A session runs its calls one at a time,
// so a call's latency includes its wait behind the others on its session.
// It reports the p50/p99 of the single calls over all iterations, and the
// p50 and p99 of the batches' wall time ("batch-p50-ms", "batch-p99-ms");
// ns/op is the mean batch wall time (starting the 100 goroutines is not
// timed).
func BenchmarkConcurrentExec100Over10Sessions(b *testing.B) {
	d := StartDaemon(b)
	ctx := ctxT(b, 10*time.Minute)
	sb := benchSandbox(ctx, b, d, "conc-exec")
	sessions := make([]*sandbox.Session, concurrentSessions)
	for i := range sessions {
		s, err := sb.CreateSession(ctx, api.CreateSessionRequest{ID: fmt.Sprintf("s%d", i)})
		if err != nil {
			b.Fatal(err)
		}
		for range 3 { // warm the session's shell
			if err := execTrue(ctx, s); err != nil {
				b.Fatal(err)
			}
		}
		sessions[i] = s
	}
	var lat, walls []time.Duration
	n := concurrentSessions * execsPerSession
	for b.Loop() {
		b.StopTimer()
		durs := make([]time.Duration, n)
		errs := make([]error, n)
		release := make(chan struct{})
		var wg sync.WaitGroup
		for j := range n {
			s := sessions[j%concurrentSessions]
			wg.Go(func() {
				<-release
				start := time.Now()
				errs[j] = execTrue(ctx, s)
				durs[j] = time.Since(start)
			})
		}
		b.StartTimer()
		start := time.Now()
		close(release)
		wg.Wait()
		walls = append(walls, time.Since(start))
		if err := errors.Join(errs...); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, durs...)
	}
	reportLatencies(b, lat)
	slices.Sort(walls)
	b.ReportMetric(ms(percentile(walls, 50)), "batch-p50-ms")
	b.ReportMetric(ms(percentile(walls, 99)), "batch-p99-ms")
}

// BenchmarkSessionExecRoundTrip: BenchmarkExecRoundTrip in a session
// created up front instead of the default session.
func BenchmarkSessionExecRoundTrip(b *testing.B) {
	d := StartDaemon(b)
	ctx := ctxT(b, 10*time.Minute)
	sb := benchSandbox(ctx, b, d, "sess-exec")
	s, err := sb.CreateSession(ctx, api.CreateSessionRequest{ID: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	for range 5 { // warm the session's shell
		if err := execTrue(ctx, s); err != nil {
			b.Fatal(err)
		}
	}
	var lat []time.Duration
	for b.Loop() {
		start := time.Now()
		err := execTrue(ctx, s)
		lat = append(lat, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
	}
	reportLatencies(b, lat)
}

// BenchmarkFileWriteReadPair1KiB: in a warm sandbox, WriteFile of 1 KiB to
// /workspace/small.txt followed by ReadFile of it; the latencies are those
// of the pair.
func BenchmarkFileWriteReadPair1KiB(b *testing.B) {
	d := StartDaemon(b)
	ctx := ctxT(b, 10*time.Minute)
	sb := benchSandbox(ctx, b, d, "file-pair")
	const path = "/workspace/small.txt"
	data := bytes.Repeat([]byte("0123456789abcdef"), 1024/16)
	for range 5 { // warm the file endpoints
		if _, err := sb.WriteFile(ctx, path, data, nil); err != nil {
			b.Fatal(err)
		}
		if _, err := sb.ReadFile(ctx, path, nil); err != nil {
			b.Fatal(err)
		}
	}
	var lat []time.Duration
	for b.Loop() {
		start := time.Now()
		_, werr := sb.WriteFile(ctx, path, data, nil)
		var f *sandbox.File
		var rerr error
		if werr == nil {
			f, rerr = sb.ReadFile(ctx, path, nil)
		}
		lat = append(lat, time.Since(start))
		if err := errors.Join(werr, rerr); err != nil {
			b.Fatal(err)
		}
		if !bytes.Equal(f.Data, data) {
			b.Fatalf("read back %d bytes, not the %d written", len(f.Data), len(data))
		}
	}
	b.StopTimer()
	if err := sb.DeleteFile(ctx, path); err != nil {
		b.Error(err)
	}
	reportLatencies(b, lat)
}

// fileMiB is the size, in MiB, of the file of BenchmarkFileStreamThroughput:
// 1024 (1 GiB), or SANDBOXD_BENCH_FILE_MIB.
func fileMiB(b *testing.B) int64 {
	b.Helper()
	s := os.Getenv("SANDBOXD_BENCH_FILE_MIB")
	if s == "" {
		return 1024
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		b.Fatalf("SANDBOXD_BENCH_FILE_MIB=%q: want a positive number of MiB", s)
	}
	return n
}

// patternReader yields n bytes cycling through a block of random bytes
// whose length (1 MiB + 13) is no power of two, so the content does not
// repeat at buffer boundaries: not constant, but as cheap as a copy.
type patternReader struct {
	block []byte
	off   int   // next byte of block
	left  int64 // bytes still to yield
}

func newPatternReader(n int64) *patternReader {
	block := make([]byte, 1<<20+13)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range block {
		block[i] = byte(r.Uint32())
	}
	return &patternReader{block: block, left: n}
}

func (p *patternReader) Read(buf []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(buf)) > p.left {
		buf = buf[:p.left]
	}
	n := 0
	for n < len(buf) {
		c := copy(buf[n:], p.block[p.off:])
		n += c
		p.off = (p.off + c) % len(p.block)
	}
	p.left -= int64(n)
	return n, nil
}

// BenchmarkFileStreamThroughput: WriteFileStream of a 1 GiB file
// (SANDBOXD_BENCH_FILE_MIB changes the size) to /workspace/big.bin from a
// generated reader (newPatternReader), then ReadFileStream of it into
// io.Discard, in a sandbox with 2 CPUs. Reported: "write-MiB/s" and
// "read-MiB/s" (each timed around the whole call, to the response or to
// EOF and Close), "cp-baseline-MiB/s" (cp of the file to /workspace/big2.bin
// inside the sandbox, timed there with date +%s%N: the sandbox's own file
// system speed, on the page cache the write just filled), "write-vs-cp"
// and "read-vs-cp" (the ratios), "peak-rss-growth-MiB" (how far the test
// process's peak RSS, VmHWM, rose over the write and the read: daemon and
// SDK, as in BenchmarkExecStreamThroughput) and ns/op (write plus read).
//
// Like BenchmarkExecStreamThroughput, it transfers the file once per
// reported result whatever b.N; the first call (b.N = 1) under -benchtime
// Nx with N > 1 only writes and reads 1 MiB as a warm-up (see isProbe).
func BenchmarkFileStreamThroughput(b *testing.B) {
	b.StopTimer()
	size := fileMiB(b) << 20
	d := StartDaemon(b)
	ctx := ctxT(b, 30*time.Minute)
	// Two CPUs, as in BenchmarkExecStreamThroughput: the agent does the
	// file I/O in the sandbox's cgroup.
	if _, err := d.Client.Create(ctx, benchID("file-tput", 0), &api.CreateSandboxRequest{Resources: &api.Resources{CPUs: 2}}); err != nil {
		b.Fatal(err)
	}
	sb := benchSandbox(ctx, b, d, "file-tput")
	const big, big2 = "/workspace/big.bin", "/workspace/big2.bin"
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if res, err := sb.Exec(ctx, "rm -f "+big+" "+big2, nil); err != nil || res.ExitCode != 0 {
			b.Errorf("rm: %+v, %v", res, err)
		}
	})

	// writeRead writes what gen yields, n bytes, to big and reads it back,
	// noting the CPU time used before, between and after in cpu.
	var cpu [3]cpuClock
	writeRead := func(gen *patternReader, n int64) (w, r time.Duration) {
		b.Helper()
		cpu[0] = readCPU(d, sb.ID())
		start := time.Now()
		res, err := sb.WriteFileStream(ctx, big, gen, nil)
		w = time.Since(start)
		cpu[1] = readCPU(d, sb.ID())
		if err != nil {
			b.Fatal(err)
		}
		if res.Size != n {
			b.Fatalf("wrote %d bytes, want %d", res.Size, n)
		}
		start = time.Now()
		rc, err := sb.ReadFileStream(ctx, big, nil)
		if err != nil {
			b.Fatal(err)
		}
		got, err := io.Copy(io.Discard, rc)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		r = time.Since(start)
		cpu[2] = readCPU(d, sb.ID())
		if err != nil {
			b.Fatal(err)
		}
		if got != n {
			b.Fatalf("read %d bytes, want %d", got, n)
		}
		return w, r
	}

	writeRead(newPatternReader(1<<20), 1<<20) // warm-up: connections, the agent's buffers
	if isProbe(b) {
		return
	}
	// The generator's block is made before the clock and the RSS baseline.
	gen := newPatternReader(size)
	resetOK := resetPeakRSS()
	rss0 := procStatusKB(b, "VmHWM")
	b.StartTimer()
	wdur, rdur := writeRead(gen, size)
	b.StopTimer()
	rss1 := procStatusKB(b, "VmHWM")

	// The baseline: cp inside the sandbox, timed there.
	res, err := sb.Exec(ctx, fmt.Sprintf("s=$(date +%%s%%N) && cp %s %s && e=$(date +%%s%%N) && echo $((e - s))", big, big2), nil)
	if err != nil {
		b.Fatal(err)
	}
	if res.ExitCode != 0 {
		b.Fatalf("cp: exit %d: %s", res.ExitCode, res.Stderr)
	}
	cpNS, err := strconv.ParseInt(strings.TrimSpace(res.Stdout), 10, 64)
	if err != nil || cpNS <= 0 {
		b.Fatalf("cp timing: stdout %q: %v", res.Stdout, err)
	}
	if !resetOK {
		b.Log("could not reset VmHWM: peak-rss-growth-MiB is the growth of the process's lifetime peak")
	}
	cp := mibps(size, time.Duration(cpNS))
	b.ReportMetric(mibps(size, wdur), "write-MiB/s")
	b.ReportMetric(mibps(size, rdur), "read-MiB/s")
	b.ReportMetric(cp, "cp-baseline-MiB/s")
	b.ReportMetric(mibps(size, wdur)/cp, "write-vs-cp")
	b.ReportMetric(mibps(size, rdur)/cp, "read-vs-cp")
	b.ReportMetric(float64(rss1-rss0)/1024, "peak-rss-growth-MiB")
	reportCPU(b, cpu[0], cpu[1], size, "write-")
	reportCPU(b, cpu[1], cpu[2], size, "read-")
	b.ReportMetric(float64((wdur + rdur).Nanoseconds()), "ns/op")
	b.ReportMetric(1, "runs") // whatever the iterations column (b.N) says
}
