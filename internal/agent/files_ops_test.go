package agent_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/testutil"
)

// Every file call on an existing file, in order.
func TestFileOps(t *testing.T) {
	c := startAgent(t)
	dir := t.TempDir()
	var pr api.PathResult
	mustCall(t, c, "/v1/files/mkdir", api.PathRequest{Path: dir + "/a/b/c", Recursive: true}, &pr)
	if pr.Path != dir+"/a/b/c" {
		t.Errorf("mkdir: %+v", pr)
	}
	mustCall(t, c, "/v1/files/mkdir", api.PathRequest{Path: dir + "/a/b/c", Recursive: true}, nil) // again: fine
	mustCall(t, c, "/v1/files/mkdir", api.PathRequest{Path: dir + "/a/d"}, nil)
	mustCall(t, c, "/v1/files/write", api.WriteFileRequest{Path: dir + "/a/f", Content: "one", Mode: "0755"}, nil)
	if fi, _ := os.Stat(dir + "/a/f"); fi == nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("mode 0755 asked: %v", fi)
	}
	// Replacing keeps the mode; asking sets it (set-id bits too).
	writeFile(t, c, dir+"/a/f", []byte("two"))
	if fi, _ := os.Stat(dir + "/a/f"); fi == nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("mode after a rewrite: %v", fi)
	}
	mustCall(t, c, "/v1/files/write", api.WriteFileRequest{Path: dir + "/a/s", Content: "x", Mode: "4711"}, nil)
	if fi, _ := os.Stat(dir + "/a/s"); fi == nil || fi.Mode()&(os.ModeSetuid|os.ModePerm) != os.ModeSetuid|0o711 {
		t.Errorf("mode 4711 asked: %v", fi)
	}
	exists := func(p string) bool {
		var res api.ExistsResult
		mustCall(t, c, "/v1/files/exists", api.PathRequest{Path: p}, &res)
		return res.Exists
	}
	if !exists(dir+"/a/f") || !exists(dir+"/a/d") || exists(dir+"/a/nope") || exists(dir+"/a/f/under-a-file") {
		t.Error("exists is wrong")
	}
	mustCall(t, c, "/v1/files/rename", api.RenameRequest{OldPath: dir + "/a/f", NewPath: dir + "/a/g"}, &pr)
	if pr.Path != dir+"/a/g" || exists(dir+"/a/f") || !exists(dir+"/a/g") {
		t.Errorf("rename: %+v", pr)
	}
	// A file replaces a file, like mv.
	mustCall(t, c, "/v1/files/rename", api.RenameRequest{OldPath: dir + "/a/s", NewPath: dir + "/a/g"}, nil)
	if b, _ := os.ReadFile(dir + "/a/g"); string(b) != "x" {
		t.Errorf("rename over a file: %q", b)
	}
	mustCall(t, c, "/v1/files/move", api.MoveRequest{SourcePath: dir + "/a/b", DestinationPath: dir + "/a/d/b"}, &pr)
	if pr.Path != dir+"/a/d/b" || !exists(dir+"/a/d/b/c") || exists(dir+"/a/b") {
		t.Errorf("move a directory: %+v", pr)
	}
	mustCall(t, c, "/v1/files/delete", api.PathRequest{Path: dir + "/a/g"}, &pr)
	if exists(dir + "/a/g") {
		t.Error("delete left the file")
	}
}

// A move to another filesystem copies; a rename refuses.
func TestFileMoveAcrossFilesystems(t *testing.T) {
	c := startAgent(t)
	src := t.TempDir()
	other := otherFilesystem(t, src)
	tree := filepath.Join(src, "tree")
	for _, err := range []error{
		os.MkdirAll(tree+"/sub", 0o750),
		os.WriteFile(tree+"/sub/x", []byte("data"), 0o640),
		os.WriteFile(tree+"/run.sh", []byte("#!/bin/sh"), 0o755),
		os.Symlink("sub/x", tree+"/link"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	err := filesCall(t, c, "/v1/files/rename", api.RenameRequest{OldPath: tree, NewPath: other + "/tree"}, nil)
	wantCode(t, "rename across filesystems", err, api.CodeValidationFailed)
	mustCall(t, c, "/v1/files/move", api.MoveRequest{SourcePath: tree, DestinationPath: other + "/tree"}, nil)
	if _, err := os.Lstat(tree); err == nil {
		t.Error("the source is still there")
	}
	dst := other + "/tree"
	if b, _ := os.ReadFile(dst + "/sub/x"); string(b) != "data" {
		t.Errorf("content: %q", b)
	}
	if fi, _ := os.Stat(dst + "/sub/x"); fi == nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("file mode: %v", fi)
	}
	if fi, _ := os.Stat(dst + "/sub"); fi == nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("directory mode: %v", fi)
	}
	if l, _ := os.Readlink(dst + "/link"); l != "sub/x" {
		t.Errorf("link: %q", l)
	}
	// A single file, over an existing one.
	if err := os.WriteFile(src+"/f", []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other+"/f", []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustCall(t, c, "/v1/files/move", api.MoveRequest{SourcePath: src + "/f", DestinationPath: other + "/f"}, nil)
	if b, _ := os.ReadFile(other + "/f"); string(b) != "new" {
		t.Errorf("moved file: %q", b)
	}
	if entries, _ := os.ReadDir(other); len(entries) != 2 {
		t.Errorf("left behind in the destination: %v", entries)
	}
}

// otherFilesystem returns a new directory on another filesystem than dir:
// in /dev/shm, or on a tmpfs mounted for the test.
func otherFilesystem(t *testing.T, dir string) string {
	t.Helper()
	var a, b unix.Stat_t
	if unix.Stat(dir, &a) == nil && unix.Stat("/dev/shm", &b) == nil && a.Dev != b.Dev {
		if d, err := os.MkdirTemp("/dev/shm", "agent-test-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	d := t.TempDir()
	err := unix.Mount("tmpfs", d, "tmpfs", 0, "size=16m")
	testutil.Requires(t, err == nil, fmt.Sprintf("no second filesystem: %v", err))
	t.Cleanup(func() { _ = unix.Unmount(d, unix.MNT_DETACH) })
	return d
}

// Relative paths resolve against the session's current directory, as the
// shell left it.
func TestFileRelativePaths(t *testing.T) {
	c := startAgent(t)
	dir := t.TempDir()
	if err := os.Mkdir(dir+"/x", 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, c, cmd("cd "+dir+"/x"))
	if res := writeFile(t, c, "f", []byte("in x")); res.Path != dir+"/x/f" {
		t.Errorf("relative write went to %s", res.Path)
	}
	if _, data := readFile(t, c, "f", ""); string(data) != "in x" {
		t.Errorf("relative read: %q", data)
	}
	if res, _ := readFile(t, c, "../x/./f", ""); res.Path != dir+"/x/f" {
		t.Errorf("../x/./f read %s", res.Path)
	}
	// Another session, by body field and by header.
	other := t.TempDir()
	mustCall(t, c, "/v1/sessions", api.CreateSessionRequest{ID: "s2", Cwd: other}, nil)
	var res api.WriteFileResult
	mustCall(t, c, "/v1/files/write", api.WriteFileRequest{Path: "g", Content: "s2", SessionID: "s2"}, &res)
	if res.Path != other+"/g" {
		t.Errorf("write in session s2 went to %s", res.Path)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://agent/v1/files/exists", strings.NewReader(`{"path":"g"}`))
	req.Header.Set(api.HeaderSessionID, "s2")
	resp, err := agentHTTP(c).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ex api.ExistsResult
	if err := decodeAnswer(t, resp, &ex); err != nil || !ex.Exists {
		t.Errorf("exists g with X-Session-Id s2: %v %v", ex, err)
	}
}

// Inside a sandbox the agent's / is the sandbox's root; paths resolve as
// they would for a command there. Documented here:
//   - ".." is resolved lexically, before the kernel sees the path:
//     "link/../f" is "f" in the directory of link, wherever link points;
//   - symbolic links are followed for read and write (a write replaces
//     the file pointed to, and the link stays a link), not for delete,
//     exists, list entries, rename and move, which act on the link.
func TestFileSymlinks(t *testing.T) {
	c := startAgent(t)
	dir, elsewhere := t.TempDir(), t.TempDir()
	if err := os.WriteFile(elsewhere+"/target", []byte("original"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/f", []byte("beside the link"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{os.Symlink(elsewhere+"/target", dir+"/link"), os.Symlink(elsewhere, dir+"/dirlink"),
		os.Symlink("nowhere", dir+"/dangling")} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, data := readFile(t, c, dir+"/link", ""); string(data) != "original" {
		t.Errorf("read through link: %q", data)
	}
	if _, data := readFile(t, c, dir+"/dirlink/target", ""); string(data) != "original" {
		t.Errorf("read through a directory link: %q", data)
	}
	if _, data := readFile(t, c, dir+"/dirlink/../f", ""); string(data) != "beside the link" {
		t.Errorf("dirlink/../f is lexical: got %q", data)
	}
	writeFile(t, c, dir+"/link", []byte("rewritten"))
	if b, _ := os.ReadFile(elsewhere + "/target"); string(b) != "rewritten" {
		t.Errorf("write through link: target holds %q", b)
	}
	if fi, _ := os.Lstat(dir + "/link"); fi == nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Error("the link is no longer a link")
	}
	if fi, _ := os.Stat(elsewhere + "/target"); fi == nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the target's mode: %v", fi)
	}
	// A dangling link: a write creates what it points to.
	writeFile(t, c, dir+"/dangling", []byte("made"))
	if b, _ := os.ReadFile(dir + "/nowhere"); string(b) != "made" {
		t.Errorf("write through a dangling link: %q", b)
	}
	var list api.FileList
	mustCall(t, c, "/v1/files/list", api.PathRequest{Path: dir}, &list)
	for _, f := range list.Files {
		if f.Name == "link" && f.Type != "symlink" {
			t.Errorf("link listed as %s", f.Type)
		}
	}
	mustCall(t, c, "/v1/files/delete", api.PathRequest{Path: dir + "/link"}, nil)
	if _, err := os.Stat(elsewhere + "/target"); err != nil {
		t.Errorf("delete of a link removed its target: %v", err)
	}
	// Listing through a link to a directory lists the directory.
	mustCall(t, c, "/v1/files/list", api.PathRequest{Path: dir + "/dirlink", Recursive: true}, &list)
	if list.Count != 1 || list.Files[0].AbsolutePath != dir+"/dirlink/target" || list.Files[0].RelativePath != "target" {
		t.Errorf("list through a link: %+v", list)
	}
}

func TestFileList(t *testing.T) {
	c := startAgent(t)
	dir := t.TempDir()
	for _, err := range []error{
		os.MkdirAll(dir+"/src/pkg", 0o755),
		os.MkdirAll(dir+"/.git/objects", 0o755),
		os.WriteFile(dir+"/.env", []byte("A=1"), 0o600),
		os.WriteFile(dir+"/README", []byte("hello"), 0o644),
		os.WriteFile(dir+"/src/main.go", []byte("package main"), 0o644),
		os.WriteFile(dir+"/src/pkg/run.sh", []byte("#!/bin/sh"), 0o755),
		os.WriteFile(dir+"/src/.hidden", nil, 0o644),
		os.WriteFile(dir+"/.git/objects/o", nil, 0o444),
		os.Symlink("README", dir+"/link"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	list := func(recursive, hidden bool) []string {
		var res api.FileList
		mustCall(t, c, "/v1/files/list", api.PathRequest{Path: dir, Recursive: recursive, IncludeHidden: hidden}, &res)
		if res.Count != len(res.Files) {
			t.Errorf("count %d for %d files", res.Count, len(res.Files))
		}
		var out []string
		for _, f := range res.Files {
			out = append(out, f.RelativePath+":"+f.Type)
			if f.AbsolutePath != filepath.Join(dir, f.RelativePath) || f.Name != filepath.Base(f.RelativePath) {
				t.Errorf("paths of %+v", f)
			}
		}
		return out
	}
	for _, tc := range []struct {
		recursive, hidden bool
		want              string
	}{
		{false, false, "README:file link:symlink src:directory"},
		{false, true, ".env:file .git:directory README:file link:symlink src:directory"},
		{true, false, "README:file link:symlink src:directory src/main.go:file src/pkg:directory src/pkg/run.sh:file"},
		{true, true, ".env:file .git:directory .git/objects:directory .git/objects/o:file README:file link:symlink " +
			"src:directory src/.hidden:file src/main.go:file src/pkg:directory src/pkg/run.sh:file"},
	} {
		if got := strings.Join(list(tc.recursive, tc.hidden), " "); got != tc.want {
			t.Errorf("recursive %v hidden %v:\n got %s\nwant %s", tc.recursive, tc.hidden, got, tc.want)
		}
	}
	var res api.FileList
	mustCall(t, c, "/v1/files/list", api.PathRequest{Path: dir + "/src/pkg"}, &res)
	if len(res.Files) != 1 {
		t.Fatalf("src/pkg: %+v", res)
	}
	f := res.Files[0]
	st, _ := os.Stat(dir + "/src/pkg/run.sh")
	if f.Size != 9 || f.Mode != "0755" || !f.ModifiedAt.Equal(st.ModTime()) ||
		f.Permissions != (api.Permissions{Readable: true, Writable: true, Executable: true}) {
		t.Errorf("run.sh: %+v", f)
	}
	mustCall(t, c, "/v1/files/list", api.PathRequest{Path: dir + "/README/..", Recursive: false}, &res)
	if len(res.Files) != 3 {
		t.Errorf("README/.. (lexically the directory): %d entries", len(res.Files))
	}
}
