package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/daemon"
	"github.com/sandboxd/sandboxd/internal/runtime/runc"
	"github.com/sandboxd/sandboxd/sandbox"
)

func warmPool(n int) func(*daemon.Config) { return func(c *daemon.Config) { c.WarmPool = n } }

// drainPool restarts d without a warm pool if it runs with one: the
// restart's Recover destroys the pooled sandboxes, which List does not
// show and destroyAll cannot reach, so that no test leaves one running.
func (d *Daemon) drainPool() {
	var cfg daemon.Config
	for _, opt := range d.opts {
		opt(&cfg)
	}
	if cfg.WarmPool <= 0 {
		return
	}
	d.opts = append(d.opts, warmPool(0))
	d.Restart()
	if names := poolContainers(d.t, d); len(names) > 0 {
		d.t.Errorf("pooled containers left after a restart without a pool: %v", names)
	}
}

// poolContainers lists the runc containers of d whose name is a warm
// pool's (pool.<hex>): pooled ones and sandboxes claimed from the pool.
func poolContainers(t testing.TB, d *Daemon) []string {
	t.Helper()
	return poolContainersIn(t, d.DataDir)
}

// poolContainersIn is poolContainers for the daemon of dataDir.
func poolContainersIn(t testing.TB, dataDir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dataDir, "state"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "pool.") {
			out = append(out, e.Name())
		}
	}
	return out
}

// waitPool waits until d has n containers of pool names (ready pooled
// sandboxes plus claimed ones), and returns their names.
func waitPool(t testing.TB, d *Daemon, n int) []string {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		names := poolContainers(t, d)
		if len(names) == n && allRunning(d, names) {
			return names
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool containers = %v, want %d running", names, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// allRunning tells whether runc reports every one of names running (a
// pooled container counts once its agent has been checked; runc's own
// "running" is what this harness can see).
func allRunning(d *Daemon, names []string) bool {
	for _, n := range names {
		out, err := exec.Command("runc", "--root", filepath.Join(d.DataDir, "state"), "state", n).Output()
		if err != nil || !strings.Contains(string(out), `"status": "running"`) {
			return false
		}
	}
	return true
}

// hostLeftovers lists what of the runtime names remains on the host: runc
// state, mounts, cgroups, directories.
func hostLeftovers(d *Daemon, names []string) []string {
	var out []string
	for _, n := range names {
		out = append(out, runc.Leftovers(d.DataDir, n)...)
	}
	return out
}

// defaultEnv is the environment a command sees in sb, minus the variables
// in drop and those bash sets per process.
func defaultEnv(t *testing.T, sb *sandbox.Sandbox, drop ...string) []string {
	t.Helper()
	res := mustExec(t, sb, "env")
	var out []string
	for _, kv := range strings.Split(strings.TrimSpace(res.Stdout), "\n") {
		k, _, _ := strings.Cut(kv, "=")
		if slices.Contains(drop, k) || k == "_" || k == "SHLVL" || strings.HasPrefix(k, "SANDBOX_") && strings.HasSuffix(k, "_ID") {
			continue
		}
		out = append(out, kv)
	}
	slices.Sort(out)
	return out
}

// A new ID takes a pooled sandbox: its hostname is the ID (kernel,
// /etc/hostname, /etc/hosts, $HOSTNAME), its files and processes are its
// own, its environment is a default sandbox's, and List shows only
// sandboxes. The pool refills; options that change the container bypass it.
func TestPoolClaim(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t, warmPool(2))
	ctx := ctxT(t, 5*time.Minute)
	waitReady(t, d, 2)
	before := waitPool(t, d, 2)

	a := d.Client.Get("claim-a")
	start := time.Now()
	res := mustExec(t, a, `hostname; cat /etc/hostname; grep -c 'claim-a$' /etc/hosts; echo "$HOSTNAME"; pwd`)
	t.Logf("create -> first exec from the pool: %v", time.Since(start))
	if res.ExitCode != 0 || res.Stdout != "claim-a\nclaim-a\n1\nclaim-a\n/workspace\n" {
		t.Errorf("claimed sandbox: exit %d, stdout %q, stderr %q", res.ExitCode, res.Stdout, res.Stderr)
	}
	if left := runc.Leftovers(d.DataDir, "claim-a"); len(left) != 0 {
		t.Errorf("claim-a runs under its own name, not a pooled one: %v", left)
	}
	// Only its own processes: the agent (pid 1), the session's bash, ps.
	res = mustExec(t, a, "ps -e -o pid=,comm=")
	for _, line := range strings.Split(strings.TrimSpace(res.Stdout), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 || (f[1] != "agent" && f[1] != "bash" && f[1] != "ps") || (f[0] == "1") != (f[1] == "agent") {
			t.Errorf("unexpected process in the claimed sandbox: %q (all: %q)", line, res.Stdout)
		}
	}
	mustExec(t, a, "echo a > /tmp/marker; echo a > /workspace/marker")

	b := d.Client.Get("claim-b")
	res = mustExec(t, b, `hostname; ls /tmp/marker /workspace/marker 2>&1 | wc -l; ls /tmp /workspace | grep -c marker; cat /etc/hostname`)
	if res.Stdout != "claim-b\n2\n0\nclaim-b\n" {
		t.Errorf("second claimed sandbox not clean: %q %q", res.Stdout, res.Stderr)
	}

	// Options that reach the container (env) bypass the pool; the rest
	// (labels) do not. Both get the same default environment.
	custom, err := d.Client.Create(ctx, "custom", &api.CreateSandboxRequest{Env: map[string]string{"EXTRA": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	if left := runc.Leftovers(d.DataDir, "custom"); len(left) == 0 {
		t.Error("a sandbox with its own env was claimed from the pool")
	}
	if got, want := defaultEnv(t, a), defaultEnv(t, custom, "EXTRA"); !slices.Equal(got, want) {
		t.Errorf("claimed sandbox's env differs from a fresh sandbox's:\n got %q\nwant %q", got, want)
	}
	waitReady(t, d, 2)
	if _, err := d.Client.Create(ctx, "labelled", &api.CreateSandboxRequest{Labels: map[string]string{"team": "x"}, KeepAlive: true}); err != nil {
		t.Fatal(err)
	}
	if left := runc.Leftovers(d.DataDir, "labelled"); len(left) != 0 {
		t.Errorf("a sandbox with only labels did not come from the pool: %v", left)
	}
	if res := mustExec(t, d.Client.Get("labelled"), "hostname"); res.Stdout != "labelled\n" {
		t.Errorf("labelled hostname %q", res.Stdout)
	}
	sb, err := d.Client.Get("labelled").Info(ctx)
	if err != nil || sb.Labels["team"] != "x" || !sb.KeepAlive || sb.Status != api.StatusRunning {
		t.Errorf("labelled = %+v, %v", sb, err)
	}

	// Pooled sandboxes are not listed.
	list, err := d.Client.List(ctx, sandbox.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range list {
		ids = append(ids, s.ID)
	}
	if want := []string{"claim-a", "claim-b", "custom", "labelled"}; !slices.Equal(ids, want) {
		t.Errorf("list = %v, want %v", ids, want)
	}

	// The pool refills: three claimed and two ready.
	after := waitPool(t, d, 5)
	for _, n := range before {
		if !slices.Contains(after, n) {
			t.Errorf("pooled container %s vanished (claimed ones keep their runtime name)", n)
		}
	}

	// Destroying a claimed sandbox removes its pool-named container.
	if err := a.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(poolContainers(t, d)); n != 4 {
		t.Errorf("after destroying claim-a: %d pool-named containers, want 4", n)
	}
}

// A claimed sandbox's container, stopped for any reason (here: killed from
// outside), starts again with its files and its ID as hostname.
func TestPoolClaimedRestart(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t, warmPool(1))
	waitReady(t, d, 1)
	sb := d.Client.Get("again")
	mustExec(t, sb, "echo kept > /workspace/f")
	// The claimed container, among pooled ones the pool refills with: the
	// one whose /etc/hostname is the ID.
	var claimed []string
	for _, n := range poolContainers(t, d) {
		if h, err := os.ReadFile(filepath.Join(d.DataDir, "sandboxes", n, "rootfs", "etc", "hostname")); err == nil && string(h) == "again\n" {
			claimed = append(claimed, n)
		}
	}
	if len(claimed) != 1 {
		t.Fatalf("pool-named containers with hostname again: %v (all: %v)", claimed, poolContainers(t, d))
	}
	pid, err := os.ReadFile(filepath.Join(d.DataDir, "sandboxes", claimed[0], "init.pid"))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(strings.TrimSpace(string(pid)))
	if err := exec.Command("kill", "-9", strconv.Itoa(p)).Run(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		res, err := sb.Exec(ctxT(t, time.Minute), "hostname; cat /workspace/f /etc/hostname", nil)
		if err == nil && res.Stdout == "again\nkept\nagain\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the kill: %+v, %v", res, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// With --warm-pool 0 there is no pooled container, and sandboxes work.
func TestPoolOff(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t, warmPool(0))
	res := mustExec(t, d.Client.Get("nopool"), "hostname")
	if res.Stdout != "nopool\n" {
		t.Errorf("hostname %q", res.Stdout)
	}
	if left := runc.Leftovers(d.DataDir, "nopool"); len(left) == 0 {
		t.Error("without a pool the sandbox should run under its own name")
	}
	time.Sleep(time.Second) // the test: no pool starts filling meanwhile
	if names := poolContainers(t, d); len(names) != 0 {
		t.Errorf("pool containers with --warm-pool 0: %v", names)
	}
}

// A restart adopts the pooled containers; a restart with a smaller pool
// destroys the surplus; nothing of a pooled sandbox is left on the host
// (runc state, mounts, cgroups, files), and a claimed sandbox survives.
func TestPoolRestartNoOrphans(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t, warmPool(2))
	waitReady(t, d, 2)
	pooled := waitPool(t, d, 2)
	keep := d.Client.Get("keep")
	mustExec(t, keep, "echo kept > /workspace/f")
	all := waitPool(t, d, 3) // the claimed one and two pooled
	if len(poolAfterClaim(all, pooled)) != 1 {
		t.Errorf("refill: before %v, after %v", pooled, all)
	}

	d.Restart()
	if got := waitPool(t, d, 3); !slices.Equal(got, all) {
		t.Errorf("after a restart: %v, want the same containers adopted %v", got, all)
	}
	keep = d.Client.Get("keep") // the client of the new daemon
	if res := mustExec(t, keep, "hostname; cat /workspace/f"); res.Stdout != "keep\nkept\n" {
		t.Errorf("claimed sandbox after restart: %q", res.Stdout)
	}

	d.opts = append(d.opts, warmPool(0))
	d.Restart()
	left := poolContainers(t, d)
	if len(left) != 1 {
		t.Fatalf("pool containers after a restart with no pool: %v, want just the claimed one", left)
	}
	var gone []string
	for _, n := range all {
		if n != left[0] {
			gone = append(gone, n)
		}
	}
	if l := hostLeftovers(d, gone); len(l) != 0 {
		t.Errorf("pooled sandboxes left behind: %v", l)
	}
	if mi, err := os.ReadFile("/proc/self/mountinfo"); err != nil {
		t.Fatal(err)
	} else {
		for _, n := range gone {
			if strings.Contains(string(mi), n) {
				t.Errorf("mount of %s left", n)
			}
		}
	}
	keep = d.Client.Get("keep")
	if res := mustExec(t, keep, "hostname; cat /workspace/f"); res.Stdout != "keep\nkept\n" {
		t.Errorf("claimed sandbox after the second restart: %q", res.Stdout)
	}
	if err := keep.Destroy(ctxT(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	if l := hostLeftovers(d, all); len(l) != 0 {
		t.Errorf("left after destroying the claimed sandbox: %v", l)
	}
}

// poolAfterClaim is a helper for reading: the names in all that were not
// in the pool before the claim (the refill).
func poolAfterClaim(all, before []string) []string {
	var out []string
	for _, n := range all {
		if !slices.Contains(before, n) {
			out = append(out, n)
		}
	}
	return out
}

// The pool never pushes a sandbox's create into 429: with room for 3
// sandboxes and a pool of 2, three creates that bypass the pool succeed,
// the pool shrinks to stay within the limit, and only a fourth is refused.
func TestPoolWithinMaxSandboxes(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t, warmPool(2), func(c *daemon.Config) { c.MaxSandboxes = 3 })
	ctx := ctxT(t, 5*time.Minute)
	waitPool(t, d, 2)
	for i := range 3 {
		id := fmt.Sprintf("full-%d", i)
		if _, err := d.Client.Create(ctx, id, &api.CreateSandboxRequest{Env: map[string]string{"I": id}}); err != nil {
			t.Fatalf("create %s with a full pool: %v", id, err)
		}
	}
	if _, err := d.Client.Create(ctx, "full-3", nil); err == nil || !strings.Contains(err.Error(), "RESOURCE_EXHAUSTED") && !strings.Contains(err.Error(), "maximum") {
		t.Errorf("fourth create: %v, want RESOURCE_EXHAUSTED", err)
	}
	// The pool gives back what the limit needs.
	deadline := time.Now().Add(time.Minute)
	for len(poolContainers(t, d)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("pool not trimmed under the limit: %v", poolContainers(t, d))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// 100 concurrent first calls for 100 different IDs all succeed.
//
// Not parallel: a hundred container starts take the machine's every core
// for a while, by design; beside it, other tests' daemons miss their
// deadlines (a restart within 30 s, a request within a minute).
func TestBurst100IDs(t *testing.T) {
	d := StartDaemon(t, warmPool(2))
	waitReady(t, d, 2)
	ctx := ctxT(t, 10*time.Minute)
	const n = 100
	errs := make([]error, n)
	durs := make([]time.Duration, n)
	release := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-release
			id := fmt.Sprintf("burst-%d", i)
			start := time.Now()
			res, err := d.Client.Get(id).Exec(ctx, "hostname", nil)
			durs[i] = time.Since(start)
			if err == nil && (res.ExitCode != 0 || res.Stdout != id+"\n") {
				err = fmt.Errorf("hostname: exit %d, %q %q", res.ExitCode, res.Stdout, res.Stderr)
			}
			errs[i] = err
		})
	}
	begin := time.Now()
	close(release)
	wg.Wait()
	failed := 0
	for i, err := range errs {
		if err != nil {
			failed++
			t.Errorf("burst-%d: %v", i, err)
		}
	}
	slices.Sort(durs)
	t.Logf("burst of %d: %d failed, wall %v, p50 %v, p99 %v, max %v", n, failed, time.Since(begin), durs[n/2-1], durs[98], durs[n-1])
	list, err := d.Client.List(ctx, sandbox.ListOptions{})
	if err != nil || len(list) != n {
		t.Errorf("list after the burst: %d sandboxes, %v", len(list), err)
	}
}

// 100 concurrent first calls for one ID create it once: one PUT answers 201
// and the others 200, and the daemon's create counter moves by one.
func TestBurstOneID(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t, warmPool(2))
	waitReady(t, d, 2)
	ctx := ctxT(t, 5*time.Minute)
	const n = 100
	codes := make([]int, n)
	release := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-release
			req, _ := http.NewRequestWithContext(ctx, http.MethodPut, d.URL+"/v1/sandboxes/same", strings.NewReader("{}"))
			req.Header.Set("Authorization", "Bearer "+d.Token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Errorf("put: %v", err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[i] = resp.StatusCode
		})
	}
	close(release)
	wg.Wait()
	created := 0
	for _, c := range codes {
		switch c {
		case http.StatusCreated:
			created++
		case http.StatusOK:
		default:
			t.Errorf("put: status %d", c)
		}
	}
	if created != 1 {
		t.Errorf("%d of %d concurrent PUTs created the sandbox, want 1", created, n)
	}

	// The same through get-or-create (exec), counted by the daemon.
	before := createCount(t, d)
	var wg2 sync.WaitGroup
	errs := make([]error, n)
	release = make(chan struct{})
	for i := range n {
		wg2.Go(func() {
			<-release
			_, errs[i] = d.Client.Get("same-exec").Exec(ctx, "true", nil)
		})
	}
	close(release)
	wg2.Wait()
	for _, err := range errs {
		if err != nil {
			t.Errorf("exec: %v", err)
		}
	}
	if got := createCount(t, d) - before; got != 1 {
		t.Errorf("creates counted for 100 concurrent first execs on one ID: %d, want 1", got)
	}
}

// createCount reads sandboxd_create_duration_seconds_count from /metrics.
func createCount(t testing.TB, d *Daemon) int {
	t.Helper()
	return int(metricValue(t, d, "sandboxd_create_duration_seconds_count"))
}

// metricValue reads an unlabelled metric from d's /metrics.
func metricValue(t testing.TB, d *Daemon, name string) float64 {
	t.Helper()
	text := metricsText(t, d)
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /metrics:\n%s", name, text)
	return 0
}

// metricsText returns d's /metrics.
func metricsText(t testing.TB, d *Daemon) string {
	t.Helper()
	code, b := sendJSONCtx(context.Background(), t, d, http.MethodGet, "/metrics", "")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, b)
	}
	return string(b)
}

// waitReady waits until d's warm pool holds n sandboxes ready to claim.
func waitReady(t testing.TB, d *Daemon, n int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for int(metricValue(t, d, "sandboxd_warm_pool_ready")) != n {
		if time.Now().After(deadline) {
			t.Fatalf("warm pool: %v ready, want %d", metricValue(t, d, "sandboxd_warm_pool_ready"), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sandboxd is killed (SIGKILL) while its pool fills and while new IDs claim
// pooled sandboxes; after a start, every sandbox it lists works under its
// ID's hostname, and nothing is orphaned (every container, mount, cgroup
// and directory has a record, pooled or not). A start without a pool then
// leaves no pooled sandbox at all.
func TestPoolDaemonKilled(t *testing.T) {
	t.Parallel()
	d := StartDaemonProc(t) // the binary's default --warm-pool 2
	ctx := ctxT(t, 5*time.Minute)
	waitFor(t, 30*time.Second, "the pool filling", func() bool {
		m, _ := filepath.Glob(filepath.Join(d.DataDir, "sandboxes", "pool.*"))
		return len(m) > 0
	})
	d.Signal(syscall.SIGKILL)
	d.Start()
	assertNoOrphans(t, d.DataDir)

	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() { _, _ = d.Client.Get(fmt.Sprintf("killed-%d", i)).Exec(ctx, "true", nil) })
	}
	// Some claims and starts are under way: their records are written.
	waitFor(t, 30*time.Second, "a claim under way", func() bool {
		list, err := d.Client.List(ctx, sandbox.ListOptions{})
		return err == nil && len(list) > 0
	})
	d.Signal(syscall.SIGKILL)
	wg.Wait()
	d.Start()
	assertNoOrphans(t, d.DataDir)
	list, err := d.Client.List(ctx, sandbox.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range list {
		if res := mustExec(t, d.Client.Get(info.ID), `hostname; cat /etc/hostname; echo "$HOSTNAME"`); res.Stdout != strings.Repeat(info.ID+"\n", 3) {
			t.Errorf("%s after the kill: hostname, /etc/hostname, $HOSTNAME %q", info.ID, res.Stdout)
		}
	}

	d.Signal(syscall.SIGTERM)
	d.args = append(d.args, "--warm-pool", "0")
	d.Start()
	assertNoOrphans(t, d.DataDir)
	if n := pooledRecords(t, d.DataDir); n != 0 {
		t.Errorf("%d pooled records left after a start with --warm-pool 0", n)
	}
	if names := poolContainersIn(t, d.DataDir); len(names) > len(list) {
		t.Errorf("pool-named containers %v for %d sandboxes", names, len(list))
	}
}

// pooledRecords counts the pooled records in dataDir's state file.
func pooledRecords(t *testing.T, dataDir string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dataDir, "state.db")+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM sandboxes WHERE pooled = 1`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A rebuilt default image (its name now points to another directory, as
// image/build.sh switches it) is never served from pooled containers of
// the old build: the next new ID starts its own container over the new
// image, and the pool replaces its stale containers.
func TestPoolImageRebuilt(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t, warmPool(1))
	waitReady(t, d, 1)
	stale := waitPool(t, d, 1)

	// The "new build": the same files under another directory, a bind
	// mount outside the data directory (nothing removes it recursively).
	build, err := os.MkdirTemp("", "sandboxd-rebuilt-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(build, 0o755); err != nil {
		t.Fatal(err)
	}
	image, err := filepath.EvalSymlinks(filepath.Join(d.Images, "default"))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount(image, build, "", syscall.MS_BIND, ""); err != nil {
		t.Fatalf("bind the image: %v", err)
	}
	t.Cleanup(func() {
		// Sandboxes' own mounts of it hold what they need; detach, and
		// remove the directory only if it is empty (unmounted) again.
		_ = syscall.Unmount(build, syscall.MNT_DETACH)
		_ = os.Remove(build)
	})
	link := filepath.Join(d.Images, "default")
	if err := os.Symlink(build, link+".new"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(link+".new", link); err != nil {
		t.Fatal(err)
	}

	res := mustExec(t, d.Client.Get("rebuilt"), "hostname")
	if res.Stdout != "rebuilt\n" {
		t.Errorf("hostname %q", res.Stdout)
	}
	// It runs under its own name, or (if the pool was quick to replace
	// its stale container) in a pooled container of the new build: never
	// in the stale one.
	if h, err := os.ReadFile(filepath.Join(d.DataDir, "sandboxes", stale[0], "rootfs", "etc", "hostname")); err == nil && string(h) == "rebuilt\n" {
		t.Fatalf("a new sandbox after the rebuild was claimed from %s, a pooled container of the old build", stale[0])
	}
	deadline := time.Now().Add(2 * time.Minute)
	for slices.Contains(poolContainers(t, d), stale[0]) {
		if time.Now().After(deadline) {
			t.Fatalf("pool containers %v; want the stale %s replaced", poolContainers(t, d), stale[0])
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitReady(t, d, 1)
	if res := mustExec(t, d.Client.Get("after-rebuild"), "hostname"); res.Stdout != "after-rebuild\n" {
		t.Errorf("hostname %q", res.Stdout)
	}
	if left := runc.Leftovers(d.DataDir, "after-rebuild"); len(left) != 0 {
		t.Errorf("a new sandbox did not come from the refilled pool: %v", left)
	}
}

// A burst of creates grows the warm pool (up to --warm-pool-max) so that
// the next burst is served from it; /metrics counts the misses of the
// first and the hits of the second. Not parallel: the pool grows past its
// minimum only while the CPUs have room.
func TestPoolGrowsWithDemand(t *testing.T) {
	d := StartDaemon(t, func(c *daemon.Config) { c.WarmPool, c.WarmPoolMax = 1, 4 })
	ctx := ctxT(t, 5*time.Minute)
	waitReady(t, d, 1)
	burst := func(prefix string) {
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() {
				if _, err := d.Client.Create(ctx, fmt.Sprintf("%s-%d", prefix, i), nil); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	burst("grow-a") // a hit, and misses (three, unless the filler was quick)
	hits, misses := metricValue(t, d, "sandboxd_warm_pool_hits_total"), metricValue(t, d, "sandboxd_warm_pool_misses_total")
	if hits+misses != 4 || misses < 1 {
		t.Errorf("first burst of 4 on a pool of 1: %v hits, %v misses; want 4 in all, misses among them", hits, misses)
	}
	if got := metricValue(t, d, "sandboxd_warm_pool_target"); got != 4 {
		t.Errorf("pool target after a burst of 4: %v, want 4", got)
	}
	waitReady(t, d, 4)
	burst("grow-b")
	if h, m := metricValue(t, d, "sandboxd_warm_pool_hits_total"), metricValue(t, d, "sandboxd_warm_pool_misses_total"); h != hits+4 || m != misses {
		t.Errorf("second burst of 4 on a pool of 4: %v hits, %v misses; want %v and %v", h, m, hits+4, misses)
	}
	for i := range 4 {
		id := fmt.Sprintf("grow-b-%d", i)
		if res := mustExec(t, d.Client.Get(id), "hostname"); res.Stdout != id+"\n" {
			t.Errorf("%s: hostname %q", id, res.Stdout)
		}
	}
}

// Every create is broken down by phase in /metrics: each phase of a
// container start once, with a wall time, and CPU where the phase does
// work (runc, the agent's start).
func TestStartPhasesInMetrics(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t, warmPool(0))
	if _, err := d.Client.Create(ctxT(t, time.Minute), "phases", nil); err != nil {
		t.Fatal(err)
	}
	got := startPhases(t, d)
	for _, phase := range []string{"record", "wait", "prepare", "disk", "idmap", "overlay", "network", "bundle", "runtime", "agent", "commit"} {
		p, ok := got[phase]
		if !ok || p.n != 1 {
			t.Errorf("phase %s: %+v, %v; want one observation", phase, p, ok)
		}
	}
	if got["runtime"].wall <= 0 || got["runtime"].cpu <= 0 || got["agent"].cpu <= 0 {
		t.Errorf("runtime %+v, agent %+v: want wall time and CPU", got["runtime"], got["agent"])
	}
}
