package idmap

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/internal/testutil"
)

// TestUserNS: the namespace maps exactly the range asked for, and an
// idmapped bind mount through it shows a root-owned file as owned by the
// range's first uid.
func TestUserNS(t *testing.T) {
	testutil.RequiresRoot(t)
	const base, size = 1207959552, 65536
	ns, err := UserNS(context.Background(), base, size)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	var own unix.Stat_t
	if err := unix.Stat("/proc/self/ns/user", &own); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(ns.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	if st.Ino == own.Ino {
		t.Fatal("UserNS returned this process's own user namespace")
	}
	src, dst := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := BindReadOnly(src, dst, ns); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(dst, unix.MNT_DETACH)
	var fst unix.Stat_t
	if err := unix.Stat(filepath.Join(dst, "f"), &fst); err != nil {
		t.Fatal(err)
	}
	if fst.Uid != base || fst.Gid != base {
		t.Errorf("root's file seen through the mapping as %d:%d, want %d:%d", fst.Uid, fst.Gid, base, base)
	}
	if err := os.WriteFile(filepath.Join(dst, "g"), nil, 0o600); err == nil {
		t.Error("the idmapped mount is writable")
	}
}

// A context that has ended stops UserNS with an error, not a namespace.
func TestUserNSContextEnded(t *testing.T) {
	testutil.RequiresRoot(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if ns, err := UserNS(ctx, 1207959552, 65536); err == nil {
		ns.Close()
		t.Fatal("a user namespace made under an ended context")
	}
}

// BenchmarkUserNS: the CPU of making a user namespace grows with the
// caller's heap if making it forks the caller (it no longer does).
func BenchmarkUserNS(b *testing.B) {
	testutil.RequiresRoot(b)
	ballast := make([][]byte, 0, 256)
	for range 256 { // ~256 MiB touched, as a busy daemon's heap
		p := make([]byte, 1<<20)
		for i := range p {
			p[i] = 1
		}
		ballast = append(ballast, p)
	}
	for b.Loop() {
		ns, err := UserNS(context.Background(), 1207959552, 65536)
		if err != nil {
			b.Fatal(err)
		}
		ns.Close()
	}
	_ = ballast
}
