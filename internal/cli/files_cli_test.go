package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
)

// cliRun runs the command line args against srvURL and returns its exit
// status, stdout and stderr.
func cliRun(ctx context.Context, srvURL, stdin string, args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	a := &app{stdin: strings.NewReader(stdin), stdout: &stdout, stderr: &stderr,
		getenv: func(k string) string { return map[string]string{"SANDBOX_TOKEN": "tok"}[k] }}
	status := a.run(ctx, append([]string{"--url", srvURL}, args...))
	return status, stdout.String(), stderr.String()
}

func TestCpFiles(t *testing.T) {
	f, srv := newFakeDaemon(t)
	local := t.TempDir()
	data := append([]byte("#!/bin/sh\n\x00\xff"), bytes.Repeat([]byte("0123456789"), 100_000)...)
	src := filepath.Join(local, "run.sh")
	if err := os.WriteFile(src, data, 0o750); err != nil {
		t.Fatal(err)
	}
	os.Chmod(src, 0o750)
	remote := func(p string) *memFile {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.files[p]
	}
	steps := []struct {
		name          string
		args          []string
		stdin         string
		wantStatus    int
		wantStdout    string
		wantStderr    string // a prefix
		check         func(t *testing.T)
		remote, local string // a file that must then hold data
	}{
		{name: "upload to a path", args: []string{"cp", src, "demo:/workspace/x.sh"}, remote: "/workspace/x.sh",
			check: func(t *testing.T) {
				if m := remote("/workspace/x.sh").mode; m != 0o750 {
					t.Errorf("mode %o, want 750", m)
				}
			}},
		{name: "upload to a relative path", args: []string{"cp", src, "demo:y.sh"}, remote: "/workspace/y.sh"},
		{name: "upload into a directory", args: []string{"cp", src, "demo:/workspace/dir"}, remote: "/workspace/dir/run.sh"},
		{name: "upload into a path ending in a slash", args: []string{"cp", src, "DEMO:/tmp/"}, remote: "/tmp/run.sh"},
		{name: "upload into the working directory", args: []string{"cp", src, "demo:"}, remote: "/workspace/run.sh"},
		{name: "upload from stdin", args: []string{"cp", "-", "demo:/tmp/in"}, stdin: string(data), remote: "/tmp/in"},
		{name: "upload into a missing directory", args: []string{"cp", src, "demo:/nope/x"}, wantStatus: 1,
			wantStderr: "sandbox: no directory /nope (FILE_NOT_FOUND)\n"},
		{name: "upload of a missing file", args: []string{"cp", filepath.Join(local, "nope"), "demo:/tmp/"}, wantStatus: 1,
			wantStderr: "sandbox: stat "},
		{name: "download to a path", args: []string{"cp", "demo:/workspace/x.sh", filepath.Join(local, "down")},
			local: filepath.Join(local, "down")},
		{name: "download into a directory", args: []string{"cp", "demo:x.sh", local}, local: filepath.Join(local, "x.sh")},
		{name: "download to stdout", args: []string{"cp", "demo:/tmp/in", "-"}, wantStdout: string(data)},
		{name: "download of a missing file", args: []string{"cp", "demo:/nope", local}, wantStatus: 1,
			wantStderr: "sandbox: no such file /nope (FILE_NOT_FOUND)\n"},
		{name: "two local sides", args: []string{"cp", src, "./a:b"}, wantStatus: 2,
			wantStderr: "sandbox: one of SRC and DST must be ID:PATH"},
		{name: "two sandboxes", args: []string{"cp", "a:/x", "b:/y"}, wantStatus: 2,
			wantStderr: "sandbox: copy between two sandboxes is not supported"},
		{name: "cat", args: []string{"cat", "demo", "/tmp/in", "/nope", "dir/run.sh"}, wantStatus: 1,
			wantStdout: string(data) + string(data), wantStderr: "sandbox: no such file /nope (FILE_NOT_FOUND)\n"},
		{name: "cat of a directory", args: []string{"cat", "demo", "/tmp"}, wantStatus: 1,
			wantStderr: "sandbox: /tmp is a directory (IS_DIRECTORY)\n"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			status, stdout, stderr := cliRun(t.Context(), srv.URL, st.stdin, st.args...)
			if status != st.wantStatus {
				t.Errorf("exit status %d, want %d (stderr %q)", status, st.wantStatus, stderr)
			}
			if stdout != st.wantStdout {
				t.Errorf("stdout = %q, want %q", trim(stdout), trim(st.wantStdout))
			}
			if !strings.HasPrefix(stderr, st.wantStderr) || (st.wantStderr == "" && stderr != "") {
				t.Errorf("stderr = %q, want it to start with %q", stderr, st.wantStderr)
			}
			if st.remote != "" {
				if file := remote(st.remote); file == nil || !bytes.Equal(file.data, data) {
					t.Errorf("%s in the sandbox does not hold the data", st.remote)
				}
			}
			if st.local != "" {
				if b, err := os.ReadFile(st.local); err != nil || !bytes.Equal(b, data) {
					t.Errorf("%s does not hold the data (%v)", st.local, err)
				}
			}
			if st.check != nil {
				st.check(t)
			}
		})
	}
}

func TestCpDirectories(t *testing.T) {
	f, srv := newFakeDaemon(t)
	src := filepath.Join(t.TempDir(), "proj")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	makeTree(t, src)
	want := snapshot(t, src)
	cp := func(t *testing.T, args ...string) {
		t.Helper()
		if status, _, stderr := cliRun(t.Context(), srv.URL, "", append([]string{"cp"}, args...)...); status != 0 {
			t.Fatalf("cp %v: status %d, stderr %q", args, status, stderr)
		}
	}
	compare := func(t *testing.T, dir string) {
		t.Helper()
		t.Cleanup(func() { os.Chmod(filepath.Join(dir, "ro"), 0o755) })
		got := snapshot(t, dir)
		for name, w := range want {
			if got[name] != w {
				t.Errorf("%s: got %q, want %q", name, trim(got[name]), trim(w))
			}
		}
		if len(got) != len(want) {
			t.Errorf("got %d entries, want %d", len(got), len(want))
		}
	}

	t.Run("upload to a new directory, download to a new one", func(t *testing.T) {
		cp(t, src, "demo:/workspace/new/copy")
		f.mu.Lock()
		file := f.files["/workspace/new/copy/sub/deep/x.txt"]
		link := f.files["/workspace/new/copy/link"]
		f.mu.Unlock()
		if file == nil || len(file.data) != 100_000 || link == nil || link.link != "a.txt" {
			t.Fatalf("sandbox files: %+v, link %+v", file, link)
		}
		dst := filepath.Join(t.TempDir(), "down")
		cp(t, "demo:/workspace/new/copy", dst)
		compare(t, dst)
	})
	t.Run("upload into an existing directory, download into one", func(t *testing.T) {
		cp(t, src, "demo:dir")
		f.mu.Lock()
		file := f.files["/workspace/dir/proj/a.txt"]
		f.mu.Unlock()
		if file == nil || string(file.data) != "hello\n" {
			t.Fatalf("/workspace/dir/proj/a.txt = %+v", file)
		}
		dst := t.TempDir()
		cp(t, "demo:/workspace/dir/proj", dst)
		compare(t, filepath.Join(dst, "proj"))
	})
	t.Run("content only", func(t *testing.T) {
		cp(t, src+"/.", "demo:/workspace/dir")
		f.mu.Lock()
		file := f.files["/workspace/dir/a.txt"]
		f.mu.Unlock()
		if file == nil {
			t.Fatal("/workspace/dir/a.txt missing")
		}
		dst := t.TempDir()
		cp(t, "demo:/workspace/new/copy/.", dst)
		compare(t, dst)
	})
	t.Run("download to stdout as a tar", func(t *testing.T) {
		status, stdout, stderr := cliRun(t.Context(), srv.URL, "", "cp", "demo:/workspace/new/copy", "-")
		if status != 0 {
			t.Fatalf("status %d, stderr %q", status, stderr)
		}
		dst := t.TempDir()
		if err := extractTar(strings.NewReader(stdout), dst, noSkip(t)); err != nil {
			t.Fatal(err)
		}
		compare(t, dst)
	})
	t.Run("links leading out are skipped", func(t *testing.T) {
		f.mu.Lock()
		f.files["/workspace/venv"] = &memFile{dir: true, mode: 0o755, mtime: fakeTime}
		f.files["/workspace/venv/bin"] = &memFile{dir: true, mode: 0o755, mtime: fakeTime}
		f.files["/workspace/venv/bin/python"] = &memFile{link: "/usr/bin/python3", mode: 0o777, mtime: fakeTime}
		f.files["/workspace/venv/pyvenv.cfg"] = &memFile{data: []byte("home = /usr/bin\n"), mode: 0o644, mtime: fakeTime}
		f.mu.Unlock()
		dst := filepath.Join(t.TempDir(), "venv")
		status, _, stderr := cliRun(t.Context(), srv.URL, "", "cp", "demo:venv", dst)
		if want := "sandbox: skipped bin/python: symbolic link to /usr/bin/python3 points outside " + dst + "\n"; status != 1 || stderr != want {
			t.Errorf("status %d, stderr %q; want 1, %q", status, stderr, want)
		}
		if b, err := os.ReadFile(filepath.Join(dst, "pyvenv.cfg")); err != nil || string(b) != "home = /usr/bin\n" {
			t.Errorf("pyvenv.cfg = %q, %v", b, err)
		}
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.files.under("/tmp") {
		t.Errorf("temporary file %s left in the sandbox", p)
	}
}

func TestLsFiles(t *testing.T) {
	f, srv := newFakeDaemon(t)
	f.mu.Lock()
	f.files["/workspace/b.txt"] = &memFile{data: []byte("bb"), mode: 0o644, mtime: fakeTime}
	f.files["/workspace/.hidden"] = &memFile{data: []byte("h"), mode: 0o600, mtime: fakeTime}
	f.files["/workspace/dir/a.go"] = &memFile{data: []byte("package a"), mode: 0o644, mtime: fakeTime}
	f.mu.Unlock()
	names := func(stdout string) []string {
		var files []api.FileInfo
		if err := json.Unmarshal([]byte(stdout), &files); err != nil {
			t.Fatalf("%v in %q", err, stdout)
		}
		var out []string
		for _, f := range files {
			out = append(out, f.RelativePath)
		}
		return out
	}
	tests := []struct {
		name       string
		args       []string
		wantStatus int
		wantNames  string // with --json
		wantStderr string
	}{
		{"working directory", []string{"ls", "demo", "--json"}, 0, "b.txt dir", ""},
		{"ID:PATH, hidden", []string{"ls", "demo:/workspace", "-a", "--json"}, 0, ".hidden b.txt dir", ""},
		{"ID PATH, recursive", []string{"ls", "demo", "/workspace", "-R", "--json"}, 0, "b.txt dir dir/a.go", ""},
		{"empty", []string{"ls", "demo:/tmp", "--json"}, 0, "", ""},
		{"a file", []string{"ls", "demo:b.txt"}, 1, "", "sandbox: /workspace/b.txt is not a directory (NOT_DIRECTORY)\n"},
		{"both path forms", []string{"ls", "demo:/a", "/b"}, 2, "", "sandbox: name the path as ID:PATH or as ID PATH, not both\n"},
		{"labels with an ID", []string{"ls", "demo", "-l", "a=b"}, 2, "", "sandbox: --label filters sandboxes"},
		{"-R without an ID", []string{"ls", "-R"}, 2, "", "sandbox: -R and -a list files: name a sandbox\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, stdout, stderr := cliRun(t.Context(), srv.URL, "", tc.args...)
			if status != tc.wantStatus || !strings.HasPrefix(stderr, tc.wantStderr) {
				t.Fatalf("status %d, stderr %q; want %d, %q", status, stderr, tc.wantStatus, tc.wantStderr)
			}
			if status == 0 {
				if got := strings.Join(names(stdout), " "); got != tc.wantNames {
					t.Errorf("names %q, want %q", got, tc.wantNames)
				}
			}
		})
	}
	status, stdout, _ := cliRun(t.Context(), srv.URL, "", "ls", "demo")
	if status != 0 || !strings.HasPrefix(stdout, "NAME    TYPE        SIZE   MODE   MODIFIED\nb.txt   file        2      0644   ") ||
		!strings.Contains(stdout, "\ndir/    directory   4096   0755   ") {
		t.Errorf("status %d, table:\n%s", status, stdout)
	}
}

func TestWriteFileTable(t *testing.T) {
	var b strings.Builder
	err := writeFileTable(&b, []api.FileInfo{
		{Name: "a", RelativePath: "src/a", Type: "file", Size: 12, Mode: "0644", ModifiedAt: fakeTime},
		{Name: "src", Type: "directory", Size: 4096, Mode: "0755"},
	}, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	want := "NAME    TYPE        SIZE   MODE   MODIFIED\n" +
		"src/a   file        12     0644   2026-11-25 12:00:00\n" +
		"src/    directory   4096   0755   -\n"
	if b.String() != want {
		t.Errorf("table:\n%s\nwant\n%s", b.String(), want)
	}
}

func TestWatch(t *testing.T) {
	_, srv := newFakeDaemon(t)
	for _, tc := range []struct {
		flag, want string
	}{
		{"", "create /workspace/src/\nmodify /workspace/a.go\nmove /workspace/a.go -> /workspace/b.go\n"},
		{"--json", `{"type":"event","eventType":"create","path":"/workspace/src","isDirectory":true}` + "\n" +
			`{"type":"event","eventType":"modify","path":"/workspace/a.go","isDirectory":false}` + "\n" +
			`{"type":"event","eventType":"move","path":"/workspace/b.go","oldPath":"/workspace/a.go","isDirectory":false}` + "\n"},
	} {
		ctx, cancel := context.WithCancel(t.Context())
		stdout := &lineWriter{lines: 3, done: cancel}
		var stderr bytes.Buffer
		a := &app{stdin: strings.NewReader(""), stdout: stdout, stderr: &stderr,
			getenv: func(k string) string { return map[string]string{"SANDBOX_TOKEN": "tok"}[k] }}
		args := []string{"--url", srv.URL, "watch", "demo", "/workspace", "-r", "--exclude", "node_modules", "--exclude", "*.tmp"}
		if tc.flag != "" {
			args = append(args, tc.flag)
		}
		status := a.run(ctx, args)
		cancel()
		if status != 130 || stdout.String() != tc.want || stderr.Len() != 0 {
			t.Errorf("watch %s: status %d, stdout %q, stderr %q; want 130, %q", tc.flag, status, stdout.String(), stderr.String(), tc.want)
		}
	}
}

// lineWriter calls done once it has been written lines lines.
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines int
	done  func()
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if bytes.Count(w.buf.Bytes(), []byte("\n")) >= w.lines {
		w.done()
	}
	return len(p), nil
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
