package agent_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agentclient"
)

// sseMsg is one Server-Sent Event as received.
type sseMsg struct {
	name, id string
	data     []byte
}

// watch opens a watch with the query q and returns its events after the
// "watching" one; cancel (also called when the test ends) closes it.
func watch(t *testing.T, c *agentclient.Client, q url.Values) (events <-chan sseMsg, cancel func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent/v1/files/watch?"+q.Encode(), nil)
	resp, err := agentHTTP(c).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		t.Fatalf("watch %v: %v", q, decodeAnswer(t, resp, nil))
	}
	ch := make(chan sseMsg, 1<<16)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var m sseMsg
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if m.name != "" {
					ch <- m
				}
				m = sseMsg{}
			case strings.HasPrefix(line, "event: "):
				m.name = line[7:]
			case strings.HasPrefix(line, "id: "):
				m.id = line[4:]
			case strings.HasPrefix(line, "data: "):
				m.data = []byte(line[6:])
			}
		}
	}()
	select {
	case m := <-ch:
		var w struct{ Type, Path string }
		_ = json.Unmarshal(m.data, &w)
		if m.name != "watching" || w.Type != "watching" || w.Path == "" {
			t.Fatalf("first event: %s %s", m.name, m.data)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no watching event")
	}
	return ch, cancel
}

// nextChange returns the next change event, failing the test after a
// timeout.
func nextChange(t *testing.T, events <-chan sseMsg) api.WatchEvent {
	t.Helper()
	select {
	case m, ok := <-events:
		if !ok {
			t.Fatal("the watch ended")
		}
		var ev api.WatchEvent
		if err := json.Unmarshal(m.data, &ev); err != nil || m.name != "event" || ev.Type != "event" {
			t.Fatalf("event %s %s: %v", m.name, m.data, err)
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5 s")
	}
	panic("unreachable")
}

// describe writes ev as "TYPE PATH [from OLDPATH]", paths relative to dir,
// with a slash after a directory's.
func describe(ev api.WatchEvent, dir string) string {
	rel := func(p string) string {
		p = strings.TrimPrefix(p, dir+"/")
		if ev.IsDirectory {
			p += "/"
		}
		return p
	}
	s := ev.EventType + " " + rel(ev.Path)
	if ev.OldPath != "" {
		s += " from " + rel(ev.OldPath)
	}
	return s
}

// expect reads change events until the one described as last, and checks
// that want is among them, in order.
func expect(t *testing.T, events <-chan sseMsg, dir string, want ...string) {
	t.Helper()
	var got []string
	i := 0
	for i < len(want) {
		d := describe(nextChange(t, events), dir)
		got = append(got, d)
		if d == want[i] {
			i++
		} else if strings.Contains(d, "ignored") {
			t.Fatalf("an event of a path the filter excludes: %v", got)
		}
	}
	t.Logf("events: %q", got)
}

func TestWatch(t *testing.T) {
	c := startAgent(t)
	dir := t.TempDir()
	events, _ := watch(t, c, url.Values{"path": {dir}, "include": {"*.txt"}})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(dir+"/ignored.log", []byte("x"), 0o644))
	must(os.WriteFile(dir+"/a.txt", []byte("1"), 0o644))
	expect(t, events, dir, "create a.txt", "modify a.txt")
	f, err := os.OpenFile(dir+"/a.txt", os.O_APPEND|os.O_WRONLY, 0)
	must(err)
	_, err = f.WriteString("2")
	must(err)
	f.Close()
	expect(t, events, dir, "modify a.txt")
	must(os.Rename(dir+"/a.txt", dir+"/b.txt"))
	expect(t, events, dir, "move b.txt from a.txt")
	must(os.Rename(dir+"/b.txt", dir+"/ignored.bin")) // out of the filter: a delete
	expect(t, events, dir, "delete b.txt")
	must(os.Rename(dir+"/ignored.bin", dir+"/c.txt")) // into it: a create
	expect(t, events, dir, "create c.txt")
	must(os.Remove(dir + "/c.txt"))
	expect(t, events, dir, "delete c.txt")
	// Not recursive: nothing from a subdirectory's files.
	must(os.Mkdir(dir+"/sub.txt", 0o755))
	must(os.WriteFile(dir+"/sub.txt/ignored.txt", nil, 0o644))
	must(os.WriteFile(dir+"/last.txt", nil, 0o644))
	expect(t, events, dir, "create sub.txt/", "create last.txt")
}

func TestWatchRecursive(t *testing.T) {
	c := startAgent(t)
	dir := t.TempDir()
	outside := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(dir+"/old/deep", 0o755))
	events, _ := watch(t, c, url.Values{"path": {dir}, "recursive": {"true"}, "exclude": {"node_modules/**", "*.tmp"}})
	must(os.WriteFile(dir+"/old/deep/f", nil, 0o644))
	expect(t, events, dir, "create old/deep/f")
	// A new directory, and what is made in it at once.
	must(os.MkdirAll(dir+"/new/a/b", 0o755))
	must(os.WriteFile(dir+"/new/a/b/g", nil, 0o644))
	must(os.MkdirAll(dir+"/node_modules/ignored", 0o755))
	must(os.WriteFile(dir+"/node_modules/ignored/x", nil, 0o644))
	must(os.WriteFile(dir+"/new/ignored.tmp", nil, 0o644))
	expect(t, events, dir, "create new/", "create new/a/", "create new/a/b/", "create new/a/b/g")
	// A directory moved within the tree keeps its watches, under its new name.
	must(os.Rename(dir+"/new", dir+"/renamed"))
	must(os.WriteFile(dir+"/renamed/a/b/h", nil, 0o644))
	expect(t, events, dir, "move renamed/ from new/", "create renamed/a/b/h")
	// Moved out of the tree: a delete, and no more events from it.
	must(os.Rename(dir+"/renamed", outside+"/gone"))
	must(os.WriteFile(outside+"/gone/a/ignored", nil, 0o644))
	// Moved into it: a create, and watched.
	must(os.Rename(outside+"/gone", dir+"/back"))
	must(os.WriteFile(dir+"/back/a/i", nil, 0o644))
	must(os.RemoveAll(dir + "/old"))
	expect(t, events, dir, "delete renamed/", "create back/", "create back/a/i", "delete old/deep/f", "delete old/deep/", "delete old/")
}

// A burst of 10,000 creations reaches the client (or an overflow event
// says some did not), and the stream goes on.
func TestWatchBurst(t *testing.T) {
	c := startAgent(t)
	dir := t.TempDir()
	if d, err := os.MkdirTemp("/dev/shm", "watch-burst-"); err == nil { // faster to fill
		t.Cleanup(func() { os.RemoveAll(d) })
		dir = d
	}
	events, _ := watch(t, c, url.Values{"path": {dir}, "exclude": {"*.skip"}})
	const n = 10_000
	began := time.Now()
	for i := range n {
		f, err := os.Create(fmt.Sprintf("%s/f%05d", dir, i))
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	if err := os.WriteFile(dir+"/sentinel", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("created in %v", time.Since(began))
	creates, overflows := 0, 0
	for {
		ev := nextChange(t, events)
		if ev.EventType == "overflow" {
			overflows++
		} else if ev.EventType == "create" && ev.Path != dir+"/sentinel" {
			creates++
		}
		if ev.Path == dir+"/sentinel" {
			break
		}
	}
	t.Logf("%d creates, %d overflows after %v", creates, overflows, time.Since(began))
	if creates != n && overflows == 0 {
		t.Errorf("%d of %d creations reported, and no overflow", creates, n)
	}
}

// A watch of a file follows the file, replaced or not; a watch whose
// directory is deleted ends with an error event; bad requests fail before
// the stream.
func TestWatchFileAndEnd(t *testing.T) {
	c := startAgent(t)
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/f", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	events, _ := watch(t, c, url.Values{"path": {dir + "/f"}})
	if err := os.WriteFile(dir+"/other", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// Through the file API: an atomic write, a rename onto the file, is
	// a modify of the file.
	writeFile(t, c, dir+"/f", []byte("new"))
	expect(t, events, dir, "modify f")
	if err := os.WriteFile(dir+"/f", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	expect(t, events, dir, "modify f")

	// Through a symbolic link: paths as asked.
	if err := os.Mkdir(dir+"/real", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dir+"/real", dir+"/link"); err != nil {
		t.Fatal(err)
	}
	events, _ = watch(t, c, url.Values{"path": {dir + "/link"}, "recursive": {"true"}})
	if err := os.MkdirAll(dir+"/real/sub", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/real/sub/x", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	expect(t, events, dir+"/link", "create sub/", "create sub/x")

	sub := t.TempDir()
	events, _ = watch(t, c, url.Values{"path": {sub}})
	if err := os.Remove(sub); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-events:
		var ev api.StreamEvent
		_ = json.Unmarshal(m.data, &ev)
		if m.name != "error" || ev.Code != api.CodeFileNotFound {
			t.Errorf("after the directory went: %s %s", m.name, m.data)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no error event after the directory went")
	}
	if _, ok := <-events; ok {
		t.Error("the stream goes on after its error event")
	}

	for q, code := range map[string]string{
		"path=" + url.QueryEscape(dir+"/missing"):       api.CodeFileNotFound,
		"path=" + url.QueryEscape(dir) + "&include=%5B": api.CodeValidationFailed,
		"path=" + url.QueryEscape(dir) + "&recursive=x": api.CodeValidationFailed,
		"path=": api.CodeValidationFailed,
	} {
		resp, err := agentHTTP(c).Get("http://agent/v1/files/watch?" + q)
		if err != nil {
			t.Fatal(err)
		}
		wantCode(t, q, decodeAnswer(t, resp, nil), code)
		resp.Body.Close()
	}
}

// A client that goes away ends the watch: its inotify instance is closed.
func TestWatchClientGone(t *testing.T) {
	c := startAgent(t)
	dir := t.TempDir()
	inotifyFDs := func() int {
		n := 0
		entries, _ := os.ReadDir("/proc/self/fd")
		for _, e := range entries {
			if l, _ := os.Readlink("/proc/self/fd/" + e.Name()); strings.Contains(l, "inotify") {
				n++
			}
		}
		return n
	}
	before := inotifyFDs()
	_, cancel := watch(t, c, url.Values{"path": {dir}, "recursive": {"1"}})
	if inotifyFDs() != before+1 {
		t.Fatalf("inotify instances: %d before, %d during the watch", before, inotifyFDs())
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for inotifyFDs() > before {
		if time.Now().After(deadline) {
			t.Fatal("the watch's inotify instance outlived its client")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// exactly reads change events until one described as last, and checks that
// they are want, no more, no less.
func exactly(t *testing.T, events <-chan sseMsg, dir string, want ...string) {
	t.Helper()
	var got []string
	for len(got) == 0 || got[len(got)-1] != want[len(want)-1] {
		got = append(got, describe(nextChange(t, events), dir))
		if len(got) > len(want)+20 {
			break
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
}

// Writes through the files API are a create of a new file and a modify of
// an existing one, never events of its temporary files; .git, node_modules
// and .DS_Store are left out unless asked for.
func TestWatchFilesAPIAndDefaultExcludes(t *testing.T) {
	c := startAgent(t)
	dir := t.TempDir()
	for _, d := range []string{".git", "node_modules/pkg"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	events, _ := watch(t, c, url.Values{"path": {dir}, "recursive": {"true"}})
	writeFile(t, c, dir+"/n.txt", []byte("new"))
	writeFile(t, c, dir+"/n.txt", []byte("again"))
	for _, f := range []string{".git/HEAD", "node_modules/pkg/index.js", ".DS_Store", "end"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	exactly(t, events, dir, "create n.txt", "modify n.txt", "create end")

	all, _ := watch(t, c, url.Values{"path": {dir}, "recursive": {"true"}, "defaultExcludes": {"false"}})
	for _, f := range []string{".git/config", "node_modules/pkg/a.js", "end2"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	exactly(t, all, dir, "create .git/config", "create node_modules/pkg/a.js", "create end2")
}
