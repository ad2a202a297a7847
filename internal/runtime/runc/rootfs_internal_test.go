package runc

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/sandboxd/sandboxd/internal/testutil"
)

func TestUnescapeMountPath(t *testing.T) {
	for in, want := range map[string]string{
		`/plain/path`:              `/plain/path`,
		`/a\040b\011c\012d`:        "/a b\tc\nd",
		`/back\134slash`:           `/back\slash`,
		`/literal\134040not-space`: `/literal\040not-space`,
		`/unknown\101escape`:       `/unknown\101escape`,
	} {
		if got := unescapeMountPath(in); got != want {
			t.Errorf("unescapeMountPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestWriteUpper: files are written owned by the sandbox's root, replacing
// what the sandbox left at their names (a symlink to a host file included),
// and never through a symlink out of the upper layer.
func TestWriteUpper(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := t.TempDir()
	upper, host := filepath.Join(dir, "upper"), filepath.Join(dir, "host")
	const uid = 1_000_000_000
	if err := prepareUpper(upper, "box", uid); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(host, []byte("host file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(host, filepath.Join(upper, "etc/resolv.conf")); err != nil {
		t.Fatal(err)
	}
	if err := writeUpper(upper, map[string]string{"etc/resolv.conf": "nameserver 192.0.2.1\n"}, uid); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"etc/hostname": "box\n", "etc/resolv.conf": "nameserver 192.0.2.1\n"} {
		p := filepath.Join(upper, name)
		b, err := os.ReadFile(p)
		fi, _ := os.Lstat(p)
		if err != nil || string(b) != want || !fi.Mode().IsRegular() || fi.Sys().(*syscall.Stat_t).Uid != uid {
			t.Errorf("%s: %q, %v, %v; want %q, a regular file owned by %d", name, b, err, fi.Mode(), want, uid)
		}
	}
	// etc itself a symlink out of the upper layer: refused.
	if err := os.RemoveAll(filepath.Join(upper, "etc")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dir, filepath.Join(upper, "etc")); err != nil {
		t.Fatal(err)
	}
	if err := writeUpper(upper, map[string]string{"etc/host": "x"}, uid); err == nil {
		t.Error("writeUpper through a symlink out of the upper layer succeeded")
	}
	if b, _ := os.ReadFile(host); string(b) != "host file\n" {
		t.Errorf("host file now %q", b)
	}
}
