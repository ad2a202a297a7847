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
// Every benchmark but BenchmarkConcurrentCreates20 uses b.Loop, so its
// setup (a daemon, a warm sandbox) runs once however many iterations.
// BenchmarkConcurrentCreates20 runs at most maxConcurrentBatches batches of
// 20 creates whatever b.N is (see there).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/internal/runtime"
	"github.com/sandboxd/sandboxd/internal/runtime/runc"
	"github.com/sandboxd/sandboxd/internal/testutil"
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
		ids := make([]string, concurrentCreates)
		durs := make([]time.Duration, concurrentCreates)
		errs := make([]error, concurrentCreates)
		release := make(chan struct{})
		var wg sync.WaitGroup
		for j := range ids {
			ids[j] = benchID(fmt.Sprintf("conc%d", n), j)
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
		wall := time.Since(start)
		b.StopTimer()
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
	image string // the default image, symlinks resolved
	dir   string // bundles/, layers/
	state string // runc --root
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
	cfg, err := json.Marshal(baselineSpec(rootfs, readonly, "/sandboxd/"+id))
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
