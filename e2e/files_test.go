package e2e

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/sandbox"
)

func TestFilesRoundTrip(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	sb := d.Client.Get("files")
	ctx := ctxT(t, 2*time.Minute)
	var pngBuf bytes.Buffer
	img := image.NewRGBA(image.Rect(0, 0, 4, 4))
	img.Set(1, 1, color.RGBA{255, 0, 0, 255})
	if err := png.Encode(&pngBuf, img); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path, mime string
		data       []byte
		binary     bool
	}{
		{"/workspace/hello.txt", "text/plain", []byte("héllo\nworld"), false},
		{"/workspace/pic.png", "image/png", pngBuf.Bytes(), true},
		{"/workspace/empty", "", nil, false},
	}
	for _, c := range cases {
		if _, err := sb.WriteFile(ctx, c.path, c.data, nil); err != nil {
			t.Fatalf("write %s: %v", c.path, err)
		}
		f, err := sb.ReadFile(ctx, c.path, nil)
		if err != nil {
			t.Fatalf("read %s: %v", c.path, err)
		}
		if !bytes.Equal(f.Data, c.data) || f.IsBinary != c.binary || f.Size != int64(len(c.data)) || (c.mime != "" && f.MimeType != c.mime) {
			t.Errorf("%s: got %d bytes binary %v mime %q size %d", c.path, len(f.Data), f.IsBinary, f.MimeType, f.Size)
		}
	}
	// Files written by the API are the exec user's, and the other way round.
	if res := mustExec(t, sb, "stat -c %U /workspace/hello.txt; echo more >> /workspace/hello.txt; echo from-exec > /workspace/x"); res.Stdout != "root\n" {
		t.Errorf("owner: %q %q", res.Stdout, res.Stderr)
	}
	if f, err := sb.ReadFile(ctx, "/workspace/x", nil); err != nil || string(f.Data) != "from-exec\n" {
		t.Errorf("file made by exec: %v %v", err, f)
	}
	// Relative paths follow the session's directory.
	mustExec(t, sb, "mkdir -p /tmp/deep && cd /tmp/deep")
	if _, err := sb.WriteFile(ctx, "rel.txt", []byte("relative"), nil); err != nil {
		t.Fatal(err)
	}
	if res := mustExec(t, sb, "cat /tmp/deep/rel.txt"); res.Stdout != "relative" {
		t.Errorf("relative write landed elsewhere: %q", res.Stdout)
	}
	// Errors.
	for name, err := range map[string]error{
		"missing":     func() error { _, err := sb.ReadFile(ctx, "/nope/x", nil); return err }(),
		"delete dir":  sb.DeleteFile(ctx, "/tmp/deep"),
		"delete gone": sb.DeleteFile(ctx, "/tmp/gone"),
		"list a file": func() error { _, err := sb.ListFiles(ctx, "/workspace/x", nil); return err }(),
		"nul":         func() error { _, err := sb.ReadFile(ctx, "/a\x00b", nil); return err }(),
		"too long":    func() error { _, err := sb.ReadFile(ctx, "/"+strings.Repeat("a", 5000), nil); return err }(),
	} {
		want := map[string]error{"missing": sandbox.ErrFileNotFound, "delete dir": sandbox.ErrIsDirectory, "delete gone": sandbox.ErrFileNotFound,
			"list a file": sandbox.ErrNotDirectory, "nul": sandbox.ErrValidation, "too long": sandbox.ErrValidation}[name]
		if !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", name, err, want)
		}
	}
	big := bytes.Repeat([]byte("x"), 33<<20)
	if _, err := sb.WriteFileStream(ctx, "/tmp/big", bytes.NewReader(big), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.ReadFile(ctx, "/tmp/big", nil); !errors.Is(err, sandbox.ErrFileTooLarge) {
		t.Errorf("JSON read of 33 MiB: %v, want ErrFileTooLarge", err)
	}
}

func TestFilesEscapesStayInside(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	sb := d.Client.Get("escape")
	ctx := ctxT(t, time.Minute)
	marker := fmt.Sprintf("/root/sandboxd-files-marker-%d", os.Getpid())
	if err := os.WriteFile(marker, []byte("host"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(marker) })
	mustExec(t, sb, "ln -s / /workspace/rootlink")
	for _, p := range []string{
		marker,
		"/workspace/../../../.." + marker,
		"/workspace/rootlink" + marker,
		filepath.Join(d.DataDir, "state.db"),
	} {
		if f, err := sb.ReadFile(ctx, p, nil); err == nil || (f != nil && strings.Contains(string(f.Data), "host")) {
			t.Errorf("read %s from the sandbox: %v %v", p, err, f)
		}
	}
	// Writing through the symlink to / writes the sandbox's own root.
	if _, err := sb.WriteFile(ctx, "/workspace/rootlink/etc/from-api", []byte("inside"), nil); err != nil {
		t.Fatal(err)
	}
	if res := mustExec(t, sb, "cat /etc/from-api"); res.Stdout != "inside" {
		t.Errorf("write through the link: %q", res.Stdout)
	}
	if _, err := os.Stat("/etc/from-api"); err == nil {
		t.Errorf("the write reached the host's /etc")
	}
}

// TestFilesStreamLarge streams 1 GiB up and down; this process (daemon
// and SDK) and the agent stay within a few MiB.
//
// Not parallel: it measures this process's peak memory, which other tests'
// daemons (in this process too) would raise.
func TestFilesStreamLarge(t *testing.T) {
	d := StartDaemon(t)
	sb := d.Client.Get("stream")
	ctx := ctxT(t, 10*time.Minute)
	const size = 1 << 30
	mustExec(t, sb, "true")
	agentPid, _ := os.ReadFile(filepath.Join(d.DataDir, "sandboxes", "stream", "init.pid"))
	agentStatus := "/proc/" + strings.TrimSpace(string(agentPid)) + "/status"
	agentBefore := vmHWM(t, agentStatus)
	resetHWM(t)
	selfBefore := vmHWM(t, "/proc/self/status")
	src := io.LimitReader(newPattern(), size)
	h := sha256.New()
	if _, err := sb.WriteFileStream(ctx, "/workspace/big.bin", io.TeeReader(src, h), nil); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%x", h.Sum(nil))
	if res := mustExec(t, sb, "sha256sum /workspace/big.bin | cut -d' ' -f1"); strings.TrimSpace(res.Stdout) != want {
		t.Fatalf("sha256 inside %q, want %s", res.Stdout, want)
	}
	rc, err := sb.ReadFileStream(ctx, "/workspace/big.bin", nil)
	if err != nil {
		t.Fatal(err)
	}
	h2 := sha256.New()
	n, err := io.Copy(h2, rc)
	rc.Close()
	if err != nil || n != size || fmt.Sprintf("%x", h2.Sum(nil)) != want {
		t.Errorf("read back %d bytes, %v, equal %v", n, err, fmt.Sprintf("%x", h2.Sum(nil)) == want)
	}
	// Memory stays flat: the daemon (in this process) and the agent grew by
	// a few MiB, not by the file.
	if grew := vmHWM(t, "/proc/self/status") - selfBefore; grew > 64<<10 {
		t.Errorf("this process (daemon and SDK) grew %d KiB streaming 1 GiB both ways", grew)
	}
	if grew := vmHWM(t, agentStatus) - agentBefore; grew > 32<<10 {
		t.Errorf("the agent grew %d KiB streaming 1 GiB both ways", grew)
	}
	rc, err = sb.ReadFileStream(ctx, "/workspace/big.bin", &sandbox.RangeOptions{Offset: 1000, Length: 10})
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(rc)
	rc.Close()
	full := make([]byte, 1010)
	_, _ = io.ReadFull(newPattern(), full)
	if !bytes.Equal(part, full[1000:]) {
		t.Errorf("range read %q", part)
	}
}

// pattern is an endless, cheap, non-constant byte stream: x, 31x+7, ...
// (mod 256) from 0. The sequence repeats within 256 bytes, so it is served
// from one block computed once: a loop over every byte, under the race
// detector, took about 100 s per GiB.
type pattern struct{ off int }

func newPattern() *pattern { return &pattern{} }

var patternBlock = sync.OnceValue(func() []byte {
	b := make([]byte, 64<<10) // a multiple of the sequence's period
	var x byte
	for i := range b {
		b[i] = x
		x = x*31 + 7
	}
	return b
})

func (p *pattern) Read(b []byte) (int, error) {
	blk := patternBlock()
	n := 0
	for n < len(b) {
		c := copy(b[n:], blk[p.off:])
		n += c
		p.off = (p.off + c) % len(blk)
	}
	return n, nil
}

func TestFilesOps(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	sb := d.Client.Get("ops")
	ctx := ctxT(t, time.Minute)
	if err := sb.Mkdir(ctx, "/workspace/a/b/c", true); err != nil {
		t.Fatal(err)
	}
	if err := sb.Mkdir(ctx, "/workspace/x/y", false); !errors.Is(err, sandbox.ErrFileNotFound) {
		t.Errorf("mkdir without parents: %v", err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if _, err := sb.WriteFile(ctx, fmt.Sprintf("/workspace/a/f%d", i), []byte(fmt.Sprint(i)), nil); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	if _, err := sb.WriteFile(ctx, "/workspace/a/.hidden", []byte("h"), nil); err != nil {
		t.Fatal(err)
	}
	list, err := sb.ListFiles(ctx, "/workspace/a", nil)
	if err != nil || len(list) != 11 { // b and f0..f9
		t.Errorf("list: %d %v", len(list), err)
	}
	list, err = sb.ListFiles(ctx, "/workspace/a", &sandbox.ListFilesOptions{Recursive: true, IncludeHidden: true})
	if err != nil || len(list) != 13 { // + .hidden, b/c
		t.Errorf("recursive hidden list: %d %v", len(list), err)
	}
	for _, f := range list {
		if f.Name == "c" && (f.RelativePath != "b/c" || f.Type != "directory" || f.AbsolutePath != "/workspace/a/b/c") {
			t.Errorf("FileInfo of c: %+v", f)
		}
	}
	if err := sb.RenameFile(ctx, "/workspace/a/f1", "/workspace/a/one"); err != nil {
		t.Fatal(err)
	}
	if err := sb.MoveFile(ctx, "/workspace/a/one", "/tmp/one"); err != nil {
		t.Fatal(err)
	}
	if ok, err := sb.Exists(ctx, "/tmp/one"); err != nil || !ok {
		t.Errorf("moved file: %v %v", ok, err)
	}
	if ok, err := sb.Exists(ctx, "/workspace/a/f1"); err != nil || ok {
		t.Errorf("old name still there: %v %v", ok, err)
	}
	if err := sb.DeleteFile(ctx, "/tmp/one"); err != nil {
		t.Fatal(err)
	}
}

func TestGitCheckout(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	sb := d.Client.Get("git")
	ctx := ctxT(t, 2*time.Minute)
	// A real repository, made here and put where the sandbox sees it.
	repo := "/workspace/src/proj.git"
	mustExec(t, sb, `set -e; mkdir -p /tmp/w && cd /tmp/w && git init -q -b main && git config user.email t@e && git config user.name t
for i in 1 2 3; do echo $i > f; git add f; git commit -qm c$i; done
git checkout -q -b feature && echo feat > g && git add g && git commit -qm feat
mkdir -p /workspace/src && git clone -q --bare /tmp/w `+repo)
	res, err := sb.GitCheckout(ctx, "file://"+repo, &sandbox.GitCheckoutOptions{Branch: "feature", Depth: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.TargetDir != "/workspace/proj" || res.Branch != "feature" || len(res.Commit) != 40 {
		t.Errorf("checkout: %+v", res)
	}
	if out := mustExec(t, sb, "cd /workspace/proj && git rev-list --count HEAD && cat g"); out.Stdout != "1\nfeat\n" {
		t.Errorf("depth 1 on feature: %q %q", out.Stdout, out.Stderr)
	}
	if _, err := sb.GitCheckout(ctx, "file:///workspace/src/none.git", nil); !errors.Is(err, sandbox.ErrGitRepoNotFound) {
		t.Errorf("missing repo: %v", err)
	}
	if _, err := sb.GitCheckout(ctx, "file://"+repo, &sandbox.GitCheckoutOptions{Branch: "nope", TargetDir: "/tmp/x"}); !errors.Is(err, sandbox.ErrGitBranchNotFound) {
		t.Errorf("missing branch: %v", err)
	}
	if _, err := sb.GitCheckout(ctx, "file://"+repo, nil); !errors.Is(err, sandbox.ErrFileExists) {
		t.Errorf("into a non-empty dir: %v", err)
	}
}

func TestWatch(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	sb := d.Client.Get("watch")
	ctx := ctxT(t, 2*time.Minute)
	mustExec(t, sb, "mkdir -p /workspace/w/sub")
	w, err := sb.Watch(ctx, "/workspace/w", &sandbox.WatchOptions{Recursive: true, Exclude: []string{"*.tmp"}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	mustExec(t, sb, "echo a > /workspace/w/sub/a.txt; echo skip > /workspace/w/x.tmp; echo more >> /workspace/w/sub/a.txt; mv /workspace/w/sub/a.txt /workspace/w/b.txt; rm /workspace/w/b.txt")
	want := []string{"create /workspace/w/sub/a.txt", "modify /workspace/w/sub/a.txt", "move /workspace/w/b.txt", "delete /workspace/w/b.txt"}
	var got []string
	deadline := time.After(20 * time.Second)
	events := make(chan api.WatchEvent)
	go func() {
		for ev, err := range w.Events() {
			if err != nil {
				return
			}
			events <- ev
		}
	}()
	for len(got) < 10 {
		select {
		case ev := <-events:
			if strings.HasSuffix(ev.Path, ".tmp") {
				t.Errorf("excluded file reported: %+v", ev)
			}
			got = append(got, ev.EventType+" "+ev.Path)
			if ev.EventType == "delete" && ev.Path == "/workspace/w/b.txt" {
				goto done
			}
		case <-deadline:
			t.Fatalf("events so far: %v", got)
		}
	}
done:
	joined := strings.Join(got, ",")
	for _, w := range want {
		if !strings.Contains(joined, w) {
			t.Errorf("missing %q in %v", w, got)
		}
	}
	// A burst of 10,000 creations does not kill the stream.
	mustExec(t, sb, "cd /workspace/w && for i in $(seq 10000); do : > f$i; done; echo last > last.txt")
	timeout := time.After(60 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.Path == "/workspace/w/last.txt" || ev.EventType == "overflow" {
				return
			}
		case <-timeout:
			t.Fatal("the watch did not survive a burst of 10,000 creations")
		}
	}
}

// vmHWM reads a process's peak resident size, in KiB.
func vmHWM(t *testing.T, status string) int {
	t.Helper()
	b, err := os.ReadFile(status)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return atoi(t, strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	t.Fatalf("no VmHWM in %s", status)
	return 0
}

// resetHWM lowers this process's peak to its current size, after returning
// what it can to the system.
func resetHWM(t *testing.T) {
	debug.FreeOSMemory()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Logf("cannot reset the peak: %v", err)
	}
}
