package e2e

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/runtime/runc"
	"github.com/sandboxd/sandboxd/sandbox"
)

func itoa(n int) string { return strconv.Itoa(n) }

// sandboxInitPid returns the host pid of sb's container init (its agent),
// found by its pid namespace (whatever the runtime calls the container).
func sandboxInitPid(t *testing.T, sb *sandbox.Sandbox) int {
	t.Helper()
	ns := strings.TrimSpace(mustExec(t, sb, "readlink /proc/self/ns/pid").Stdout)
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		if l, err := os.Readlink(p + "/ns/pid"); err != nil || l != ns {
			continue
		}
		status, err := os.ReadFile(p + "/status")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(status), "\n") {
			if f, ok := strings.CutPrefix(line, "NSpid:"); ok {
				if fs := strings.Fields(f); len(fs) > 1 && fs[len(fs)-1] == "1" {
					pid, _ := strconv.Atoi(filepath.Base(p))
					return pid
				}
			}
		}
	}
	t.Fatalf("no host process is the init of %s's pid namespace %s", sb.ID(), ns)
	return 0
}

// TestContainerKilledFromOutside: the next call after a container is
// killed works (with the files and the sessions' settings); streams open at
// that moment end promptly with an error event, never a completion.
func TestContainerKilledFromOutside(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	ctx := ctxT(t, 2*time.Minute)
	sb := d.Client.Get("killed")
	mustExec(t, sb, "echo kept > /workspace/f")
	if _, err := sb.CreateSession(ctx, api.CreateSessionRequest{ID: "s", Env: map[string]string{"K": "v"}}); err != nil {
		t.Fatal(err)
	}
	pid := sandboxInitPid(t, sb) // before the stream occupies the default session
	st, err := sb.ExecStream(ctx, "echo started; sleep 60; echo never", nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := sb.StartProcess(ctx, "echo up; sleep 60", nil)
	if err != nil {
		t.Fatal(err)
	}
	logs, err := sb.StreamProcessLogs(ctx, p.ID(), "")
	if err != nil {
		t.Fatal(err)
	}
	// Up and running: its start event, then its first output.
	for range 2 {
		if !st.Next() {
			t.Fatalf("exec stream: %v", st.Err())
		}
	}
	if !logs.Next() {
		t.Fatalf("log stream: %v", logs.Err())
	}

	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	var wg sync.WaitGroup
	for name, next := range map[string]func() (string, bool){
		"exec":    func() (string, bool) { ok := st.Next(); return st.Event().Type, ok },
		"process": func() (string, bool) { ok := logs.Next(); return logs.Event().Type, ok },
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				typ, ok := next()
				if !ok {
					break
				}
				if typ == api.EventComplete || typ == api.EventExit {
					t.Errorf("%s stream: a %s event for work that was killed", name, typ)
				}
			}
			if took := time.Since(killed); took > 5*time.Second {
				t.Errorf("%s stream ended %v after the kill", name, took)
			}
		}()
	}
	wg.Wait()
	for name, err := range map[string]error{"exec": st.Err(), "process": logs.Err()} {
		var se *sandbox.Error
		if !errors.As(err, &se) {
			t.Errorf("%s stream ended with %v, want an error event", name, err)
		}
	}

	// The next call recreates it, or says to retry (which the SDK does).
	res := mustExec(t, sb, "cat /workspace/f")
	if res.Stdout != "kept\n" {
		t.Errorf("after the kill: %q", res.Stdout)
	}
	if out, err := sb.GetSession("s").Exec(ctx, "echo $K", nil); err != nil || out.Stdout != "v\n" {
		t.Errorf("session after the kill: %+v %v", out, err)
	}
	if v := metric(t, d, "sandboxd_container_exits_total"); v != "1" {
		t.Errorf("sandboxd_container_exits_total = %q, want 1", v)
	}
}

// TestOOMInOneSandbox: a command that exhausts a small memory limit is
// killed (137); the sandbox answers normally afterwards, and its neighbour
// never notices.
func TestOOMInOneSandbox(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	ctx := ctxT(t, 2*time.Minute)
	small, err := d.Client.Create(ctx, "small", &api.CreateSandboxRequest{Resources: &api.Resources{MemoryMB: 64}})
	if err != nil {
		t.Fatal(err)
	}
	neighbour := d.Client.Get("neighbour")
	mustExec(t, neighbour, "echo fine > /workspace/n")
	mustExec(t, small, "echo kept > /workspace/f")
	res, err := small.Exec(ctx, `python3 -c 'b = bytearray(512 << 20); print(len(b))'`, nil)
	switch {
	case err == nil && res.ExitCode != 137:
		t.Errorf("a 512 MiB allocation under a 64 MiB limit: %+v", res)
	case err != nil && !errors.Is(err, sandbox.ErrUnavailable) && !errors.Is(err, sandbox.ErrInternal):
		// If the OOM killer took the agent, the call was cut.
		t.Errorf("OOM: %v", err)
	}
	if res := mustExec(t, small, "cat /workspace/f"); res.Stdout != "kept\n" {
		t.Errorf("after OOM: %q", res.Stdout)
	}
	if res := mustExec(t, neighbour, "cat /workspace/n"); res.Stdout != "fine\n" {
		t.Errorf("neighbour: %q", res.Stdout)
	}
}

// orphans lists what is left on the host of containers, mounts and cgroups
// under dataDir that no record in its state file accounts for.
func orphans(t *testing.T, dataDir string) []string {
	t.Helper()
	names := recordNames(t, dataDir)
	var out []string
	// runc's containers.
	list, err := exec.Command("runc", "--root", filepath.Join(dataDir, "state"), "list", "-q").Output()
	if err != nil {
		t.Fatalf("runc list: %v", err)
	}
	for _, n := range strings.Fields(string(list)) {
		if !names[n] {
			out = append(out, "container "+n)
		}
	}
	// Mounts.
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	prefix := filepath.Join(dataDir, "sandboxes") + "/"
	for _, line := range strings.Split(string(mi), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || !strings.HasPrefix(f[4], prefix) {
			continue
		}
		if n, _, _ := strings.Cut(strings.TrimPrefix(f[4], prefix), "/"); !names[n] {
			out = append(out, "mount "+f[4])
		}
	}
	// Sandbox directories.
	ents, _ := os.ReadDir(filepath.Join(dataDir, "sandboxes"))
	for _, e := range ents {
		if !names[e.Name()] {
			out = append(out, "directory "+e.Name())
		}
	}
	// Cgroups, in every hierarchy.
	cgPrefix := strings.TrimSuffix(runc.CgroupPath(dataDir, "x"), "x")
	cgs, _ := filepath.Glob("/sys/fs/cgroup/*" + cgPrefix + "*")
	more, _ := filepath.Glob("/sys/fs/cgroup" + cgPrefix + "*")
	for _, cg := range append(cgs, more...) {
		if n := strings.TrimPrefix(filepath.Base(cg), filepath.Base(cgPrefix)); !names[n] {
			out = append(out, "cgroup "+cg)
		}
	}
	return out
}

// recordNames returns the runtime names (and IDs) of every record in
// dataDir's state file, pooled ones included.
func recordNames(t *testing.T, dataDir string) map[string]bool {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dataDir, "state.db")+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cols := "id"
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM pragma_table_info('sandboxes') WHERE name = 'runtime_name'`).Scan(&n); err == nil && n > 0 {
		cols = "id, runtime_name"
	}
	rows, err := db.Query(`SELECT ` + cols + ` FROM sandboxes`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	names := map[string]bool{}
	for rows.Next() {
		var id, name string
		dest := []any{&id}
		if cols != "id" {
			dest = append(dest, &name)
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		names[id], names[name] = true, true
	}
	delete(names, "")
	return names
}

// assertNoOrphans fails if anything of dataDir's sandboxes is left that no
// record accounts for, after a grace period for work in flight.
func assertNoOrphans(t *testing.T, dataDir string) {
	t.Helper()
	var left []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if left = orphans(t, dataDir); len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			break
		}
	}
	t.Errorf("orphans: %v", left)
}

// TestDaemonKilledDuringWrites: sandboxd is killed (SIGKILL) while clients
// write files, and the containers are lost too (as in a host crash); after
// a start, every write that was acknowledged is there, byte for byte, with
// the sandbox's env and sessions' settings, and nothing is orphaned.
func TestDaemonKilledDuringWrites(t *testing.T) {
	t.Parallel()
	d := StartDaemonProc(t)
	ctx := ctxT(t, 3*time.Minute)
	sb, err := d.Client.Create(ctx, "durable", &api.CreateSandboxRequest{Env: map[string]string{"FROM_CREATE": "yes"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sb.CreateSession(ctx, api.CreateSessionRequest{ID: "work", Cwd: "/tmp", Env: map[string]string{"W": "1"}}); err != nil {
		t.Fatal(err)
	}
	mustExec(t, sb, "mkdir -p /workspace/w")
	if _, err := sb.ExposePort(ctx, 8080, &sandbox.ExposePortOptions{Name: "web", Token: "kept_token"}); err != nil {
		t.Fatal(err)
	}
	content := func(i int) []byte { return bytes.Repeat([]byte(fmt.Sprintf("file %d;", i)), 1000+i) }

	var mu sync.Mutex
	acked := map[int]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ; i += 4 {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				if i%2 == 0 {
					_, err = sb.WriteFile(ctx, fmt.Sprintf("/workspace/w/%d", i), content(i), nil)
				} else {
					_, err = sb.WriteFileStream(ctx, fmt.Sprintf("/workspace/w/%d", i), bytes.NewReader(content(i)), nil)
				}
				if err != nil {
					return // the daemon is gone
				}
				mu.Lock()
				acked[i] = true
				mu.Unlock()
			}
		}()
	}
	// Let some writes through, then kill in the middle of others.
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 20 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	pid := sandboxInitPidDirect(t, d, "durable")
	d.Signal(syscall.SIGKILL)
	close(stop)
	wg.Wait()
	// The host "crashes": the container goes too.
	_ = syscall.Kill(pid, syscall.SIGKILL)
	d.Start()

	sb = d.Client.Get("durable")
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d writes acknowledged before the kill", len(acked))
	for i := range acked {
		f, err := sb.ReadFile(ctx, fmt.Sprintf("/workspace/w/%d", i), nil)
		if err != nil || !bytes.Equal(f.Data, content(i)) {
			t.Fatalf("acknowledged write %d: %v (%d bytes)", i, err, len(f.Data))
		}
	}
	// No half-written file shows: every file is whole (or absent).
	res := mustExec(t, sb, `cd /workspace/w && for f in *; do printf '%s %s\n' "$f" "$(wc -c < "$f")"; done; ls -a | grep -c sbx- || true`)
	for _, line := range strings.Split(strings.TrimSpace(res.Stdout), "\n") {
		var name, size int
		if _, err := fmt.Sscanf(line, "%d %d", &name, &size); err == nil && size != len(content(name)) {
			t.Errorf("file %d has %d bytes, want %d", name, size, len(content(name)))
		}
	}
	if out, err := sb.GetSession("work").Exec(ctx, `pwd; echo "$W $FROM_CREATE"`, nil); err != nil || out.Stdout != "/tmp\n1 yes\n" {
		t.Errorf("session and env after the crash: %+v %v", out, err)
	}
	if ports, err := sb.GetExposedPorts(ctx); err != nil || len(ports) != 1 || ports[0].Port != 8080 || ports[0].Token != "kept_token" || ports[0].Name != "web" {
		t.Errorf("exposed ports after the crash: %+v %v", ports, err)
	}
	assertNoOrphans(t, d.DataDir)
}

// sandboxInitPidDirect is sandboxInitPid through a DaemonProc.
func sandboxInitPidDirect(t *testing.T, d *DaemonProc, id string) int {
	return sandboxInitPid(t, d.Client.Get(id))
}

// TestDaemonKilledDuringCreates: sandboxd is killed while sandboxes are
// being created and one destroyed; after a start, each is either there and
// working or not there at all (never half), none is left "creating" or
// "destroying", and nothing is orphaned: no container, mount, cgroup or
// directory without its record.
func TestDaemonKilledDuringCreates(t *testing.T) {
	t.Parallel()
	d := StartDaemonProc(t)
	ctx := ctxT(t, 3*time.Minute)
	doomed := d.Client.Get("doomed")
	mustExec(t, doomed, "echo still > /workspace/f")

	const n = 6
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = d.Client.Create(ctx, fmt.Sprintf("half-%d", i), nil)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = doomed.Destroy(ctx)
	}()
	// Some are starting (their directories are there), some not yet.
	waitFor(t, 30*time.Second, "a create under way", func() bool {
		m, _ := filepath.Glob(filepath.Join(d.DataDir, "sandboxes", "half-*"))
		return len(m) > 0
	})
	d.Signal(syscall.SIGKILL)
	wg.Wait()
	d.Start()

	list, err := d.Client.List(ctx, sandbox.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after the kill: %d sandboxes", len(list))
	for _, info := range list {
		switch info.Status {
		case api.StatusCreating, "destroying":
			t.Errorf("%s left %s", info.ID, info.Status)
		}
		res := mustExec(t, d.Client.Get(info.ID), "cat /workspace/f 2>/dev/null || echo none")
		if info.ID == "doomed" && res.Stdout != "still\n" {
			t.Errorf("a destroy that did not happen left the files half gone: %q", res.Stdout)
		}
	}
	assertNoOrphans(t, d.DataDir)
	// And destroying them all leaves nothing at all.
	for _, info := range list {
		if err := d.Client.Get(info.ID).Destroy(ctx); err != nil {
			t.Fatal(err)
		}
	}
	assertNoOrphans(t, d.DataDir)
}
