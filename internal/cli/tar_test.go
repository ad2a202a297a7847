package cli

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// makeTree creates a small tree under dir: text and binary files, an empty
// file, an executable, nested and empty directories, a read-only directory
// and symbolic links within the tree.
func makeTree(t *testing.T, dir string) {
	t.Helper()
	mtime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	files := []struct {
		name string
		data string
		mode fs.FileMode
	}{
		{"a.txt", "hello\n", 0o644},
		{"bin.dat", "\x00\xff\xfe\x00", 0o600},
		{"empty", "", 0o644},
		{"run.sh", "#!/bin/sh\necho hi\n", 0o755},
		{"sub/deep/x.txt", strings.Repeat("x", 100_000), 0o644},
		{"ro/file", "read only", 0o444},
		{strings.Repeat("long-name-", 12) + "/f", "long path", 0o644},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.data), f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"emptydir"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{"link": "a.txt", "sub/deep/up": "../../run.sh", "dangling": "nowhere"} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "ro"), 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(dir, "ro"), 0o755) })
}

// snapshot describes every entry under dir: type, mode, content or link
// target, and a file's modification time.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		desc := info.Mode().String()
		switch {
		case info.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += " " + info.ModTime().UTC().Format(time.RFC3339) + " " + string(b)
		case info.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		}
		m[filepath.ToSlash(rel)] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestTarRoundTrip(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	makeTree(t, src)
	var buf bytes.Buffer
	if err := writeTar(&buf, src); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(bytes.NewReader(buf.Bytes()))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Uid != 0 || hdr.Gid != 0 || hdr.Uname != "" || strings.HasPrefix(hdr.Name, "/") || strings.HasPrefix(hdr.Name, "./") {
			t.Errorf("header %q: uid %d gid %d uname %q", hdr.Name, hdr.Uid, hdr.Gid, hdr.Uname)
		}
	}
	if err := extractTar(bytes.NewReader(buf.Bytes()), dst, noSkip(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(dst, "ro"), 0o755) })
	want, got := snapshot(t, src), snapshot(t, dst)
	if len(want) != 15 {
		t.Fatalf("source tree has %d entries: %v", len(want), want)
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: got %q, want %q", name, trim(got[name]), trim(w))
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("extra entry %s", name)
		}
	}
}

func trim(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// TestExtractReplaces checks that extracting over an existing tree replaces
// files and links rather than writing through them.
func TestExtractReplaces(t *testing.T) {
	dst := t.TempDir()
	outside := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(outside, []byte("safe"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, "f"), []byte("old content, longer"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dst, "l")); err != nil {
		t.Fatal(err)
	}
	if err := extractTar(tarOf(t, file("f", "new"), file("l", "replaced")), dst, noSkip(t)); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{filepath.Join(dst, "f"): "new", filepath.Join(dst, "l"): "replaced", outside: "safe"} {
		if b, err := os.ReadFile(name); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", name, b, err, want)
		}
	}
}

// TestExtractStaysInsideExistingLinks checks that an entry under a link
// already in the target directory, leading out of it, is not written.
func TestExtractStaysInsideExistingLinks(t *testing.T) {
	dst, outside := t.TempDir(), t.TempDir()
	for name, target := range map[string]string{"abs": outside, "rel": "../" + filepath.Base(outside)} {
		if err := os.Symlink(target, filepath.Join(dst, name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"abs/x", "rel/x"} {
		if err := extractTar(tarOf(t, file(name, "x")), dst, noSkip(t)); err == nil {
			t.Errorf("%s: extracted through a link leading out", name)
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("written outside: %v", entries)
	}
}

// entry is one entry of a crafted tar.
type entry struct {
	typ        byte
	name, data string
	link       string
}

func file(name, data string) entry  { return entry{typ: tar.TypeReg, name: name, data: data} }
func dir(name string) entry         { return entry{typ: tar.TypeDir, name: name} }
func symlink(name, to string) entry { return entry{typ: tar.TypeSymlink, name: name, link: to} }
func hardlink(name, to string) entry {
	return entry{typ: tar.TypeLink, name: name, link: to}
}

// tarOf returns a tar stream of entries, written as they are, unchecked.
func tarOf(t *testing.T, entries ...entry) io.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Typeflag: e.typ, Name: e.name, Linkname: e.link, Size: int64(len(e.data)), Mode: 0o644, Format: tar.FormatPAX}
		if e.typ == tar.TypeDir {
			hdr.Mode = 0o755
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

// noSkip fails the test if an entry is skipped.
func noSkip(t *testing.T) func(name, why string) {
	return func(name, why string) { t.Errorf("skipped %s: %s", name, why) }
}

// TestExtractRefusesEscapes extracts crafted archives into base/dst and
// checks that entries reaching out of dst are refused (with an error) or,
// for symbolic links, skipped (and the rest extracted), and that nothing
// lands outside dst.
func TestExtractRefusesEscapes(t *testing.T) {
	tests := []struct {
		name     string
		entries  []entry
		wantSkip string // the symbolic link skipped; "" for an error
	}{
		{"dot-dot name", []entry{file("../evil", "x")}, ""},
		{"dot-dot inside a name", []entry{file("a/../../evil", "x")}, ""},
		{"dot-dot directory", []entry{dir("../evil/")}, ""},
		{"absolute name", []entry{file("/tmp/evil", "x")}, ""},
		{"backslash-absolute name", []entry{file(`\evil`, "x")}, ""},
		{"empty name", []entry{file("", "x")}, ""},
		{"write through a symlink to the parent", []entry{symlink("d", "."), file("d/../evil", "x")}, ""},
		{"hard link climbing out", []entry{hardlink("h", "../victim")}, ""},
		{"hard link to an absolute path", []entry{hardlink("h", "/etc/passwd")}, ""},
		{"absolute symlink", []entry{symlink("l", "/etc/passwd"), file("after", "ok")}, "l"},
		{"symlink climbing out", []entry{symlink("a/l", "../../evil"), file("after", "ok")}, "a/l"},
		{"symlink to the parent", []entry{symlink("l", ".."), file("after", "ok")}, "l"},
		{"symlink through a symlink", []entry{symlink("d", "."), symlink("x", "d/.."), file("after", "ok")}, "x"},
		{"symlink through a later symlink", []entry{symlink("x", "d/.."), symlink("d", "."), file("after", "ok")}, "x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			if err := os.WriteFile(filepath.Join(base, "victim"), []byte("v"), 0o644); err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(base, "dst")
			if err := os.Mkdir(dst, 0o755); err != nil {
				t.Fatal(err)
			}
			var skipped []string
			err := extractTar(tarOf(t, tc.entries...), dst, func(name, why string) { skipped = append(skipped, name) })
			switch {
			case tc.wantSkip == "" && !errors.Is(err, errUnsafeEntry):
				t.Errorf("err = %v, want an unsafe entry", err)
			case tc.wantSkip != "" && (err != nil || len(skipped) != 1 || skipped[0] != tc.wantSkip):
				t.Errorf("err = %v, skipped %q; want %s skipped", err, skipped, tc.wantSkip)
			case tc.wantSkip != "":
				if _, err := os.Lstat(filepath.Join(dst, tc.wantSkip)); err == nil {
					t.Errorf("skipped link %s is there", tc.wantSkip)
				}
				if b, err := os.ReadFile(filepath.Join(dst, "after")); err != nil || string(b) != "ok" {
					t.Errorf("the entry after the skipped one: %q, %v", b, err)
				}
			}
			for name := range snapshot(t, base) {
				if name != "victim" && name != "dst" && !strings.HasPrefix(name, "dst/") {
					t.Errorf("%s was written outside dst", name)
				}
			}
			if b, err := os.ReadFile(filepath.Join(base, "victim")); err != nil || string(b) != "v" {
				t.Errorf("victim = %q, %v", b, err)
			}
			// No link left in dst leads out of it.
			for name, desc := range snapshot(t, dst) {
				if strings.HasPrefix(desc, "L") {
					p := filepath.Join(dst, name)
					if real, err := filepath.EvalSymlinks(p); err == nil && !strings.HasPrefix(real, dst) {
						t.Errorf("link %s leads to %s", name, real)
					}
				}
			}
		})
	}
}

// TestExtractAllowsInsideLinks checks that links that stay inside are
// kept, whatever their order.
func TestExtractAllowsInsideLinks(t *testing.T) {
	dst := t.TempDir()
	err := extractTar(tarOf(t,
		symlink("bin/tool", "../lib/tool"), // before its target
		file("lib/tool", "T"),
		symlink("self", "."),
		hardlink("lib/hard", "lib/tool"),
		symlink("dangling", "missing"),
		dir("./"),
	), dst, noSkip(t))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"bin/tool": "T", "lib/hard": "T", "self/lib/tool": "T"} {
		if b, err := os.ReadFile(filepath.Join(dst, name)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", name, b, err, want)
		}
	}
	if target, err := os.Readlink(filepath.Join(dst, "dangling")); err != nil || target != "missing" {
		t.Errorf("dangling -> %q, %v", target, err)
	}
}

func FuzzEntryName(f *testing.F) {
	for _, s := range []string{"a", "./a/b/", "../a", "a/../b", "/a", "a//b", "..", ".", "a/..", "...", `\a`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got, err := entryName(name)
		if err != nil {
			return
		}
		if got == "" || path.IsAbs(got) || got == ".." || strings.HasPrefix(got, "../") || path.Clean(got) != got {
			t.Errorf("entryName(%q) = %q", name, got)
		}
	})
}
