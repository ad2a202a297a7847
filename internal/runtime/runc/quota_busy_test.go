package runc

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/internal/errdefs"
	"github.com/sandboxd/sandboxd/internal/testutil"
)

// TestMountDiskWaitsForOldLoop: while an image's previous loop device is
// still bound (its file system held elsewhere), mountDisk waits for it
// instead of mounting a second ext4 over the same blocks through a second
// device.
func TestMountDiskWaitsForOldLoop(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := testutil.TempDir(t)
	img, mnt := filepath.Join(dir, diskFile), filepath.Join(dir, diskMount)
	if err := formatDisk(context.Background(), img, 16); err != nil {
		t.Fatal(err)
	}
	_, old, err := attachLoop(img)
	if err != nil {
		t.Fatal(err)
	}
	const hold = 300 * time.Millisecond
	released := time.Now().Add(hold)
	timer := time.AfterFunc(hold, func() { old.Close() }) // autoclear detaches it
	defer func() {
		if timer.Stop() {
			old.Close()
		}
	}()
	if err := unix.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := mountDisk(img, mnt, false); err != nil {
		t.Fatalf("mount: %v", err)
	}
	defer func() {
		if err := unmountDisk(dir); err != nil {
			t.Errorf("unmount: %v", err)
		}
	}()
	if time.Now().Before(released) {
		t.Errorf("mounted while the image's old loop device was still bound")
	}
	if devs := loopDevicesBacking(img); len(devs) != 1 {
		t.Errorf("loop devices of the image: %v; want one", devs)
	}
}

// TestFormatDiskHostFull: when the host's file system is full, formatDisk
// fails naming the cause and leaves no partial disk behind.
func TestFormatDiskHostFull(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := testutil.TempDir(t)
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=4m"); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Write(bytes.Repeat([]byte{1}, 5<<20))
	f.Close()
	if !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("filling the host: %v", err)
	}
	disk := filepath.Join(dir, diskFile)
	err = formatDisk(context.Background(), disk, 16)
	if err == nil || !strings.Contains(err.Error(), "No space left") {
		t.Errorf("formatDisk on a full host: %v; want it to say No space left", err)
	}
	for _, p := range []string{disk, disk + ".tmp"} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after a failed formatDisk: %v", p, err)
		}
	}
}

// TestFormatDiskTooLarge: a disk larger than the host's file system can
// hold a file of (16 TiB on ext4, the top of the diskMB range) is an
// invalid argument, not an internal error.
func TestFormatDiskTooLarge(t *testing.T) {
	dir := t.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	testutil.Requires(t, st.Type == unix.EXT4_SUPER_MAGIC && st.Bsize == 4096, "needs a temporary directory on ext4 with 4 KiB blocks")
	path := filepath.Join(dir, "disk.img")
	err := formatDisk(context.Background(), path, 1<<24)
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("16 TiB disk on ext4: %v; want ErrInvalidArgument", err)
	}
}

// TestCopySparse: a copy has the source's bytes and its holes: data only
// where the source has data, whatever lies between and after (the file
// ends in a hole).
func TestCopySparse(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	const size = 64 << 20
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	chunks := map[int64]string{0: "first", 8 << 20: "middle", 32 << 20: "before the last hole"}
	for off, s := range chunks {
		if _, err := f.WriteAt([]byte(s), off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	if err := copySparse(src, dst); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(src)
	got, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("copy differs from its source")
	}
	var st unix.Stat_t
	if err := unix.Stat(dst, &st); err != nil {
		t.Fatal(err)
	}
	if used := st.Blocks * 512; used > 1<<20 {
		t.Errorf("copy takes %d bytes of disk; want its holes kept (at most 1 MiB for three blocks)", used)
	}
	if _, err := os.Stat(dst + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left: %v", err)
	}
}

// TestLoopRecord: the device an image was attached to is found through the
// record beside it while it holds the image, and not once it has let go;
// without a record, through a walk of every loop device.
func TestLoopRecord(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := testutil.TempDir(t)
	img := filepath.Join(dir, diskFile)
	if err := formatDisk(context.Background(), img, 16); err != nil {
		t.Fatal(err)
	}
	dev, loop, err := attachLoop(img)
	if err != nil {
		t.Fatal(err)
	}
	defer loop.Close()
	if b, err := os.ReadFile(loopRecord(img)); err != nil || strings.TrimSpace(string(b)) != dev {
		t.Fatalf("record of %s: %q, %v; want %s", img, b, err, dev)
	}
	if devs := loopDevicesStillBacking(img); len(devs) != 1 || !strings.HasPrefix(devs[0], dev+" ") {
		t.Errorf("attached to %s: found %v", dev, devs)
	}
	if err := os.Remove(loopRecord(img)); err != nil {
		t.Fatal(err)
	}
	if devs := loopDevicesStillBacking(img); len(devs) != 1 || !strings.HasPrefix(devs[0], dev+" ") {
		t.Errorf("attached to %s, no record: found %v", dev, devs)
	}
	if err := os.WriteFile(loopRecord(img), []byte(dev+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	loop.Close() // autoclear: nothing else holds it
	waitDetached := time.Now().Add(2 * time.Second)
	for len(loopDevicesStillBacking(img)) > 0 && time.Now().Before(waitDetached) {
		time.Sleep(5 * time.Millisecond)
	}
	if devs := loopDevicesStillBacking(img); len(devs) != 0 {
		t.Errorf("after its device let go: found %v", devs)
	}
}

// A template that cannot be copied makes newDisk format the disk instead.
func TestNewDiskFormatsWhenTheCopyFails(t *testing.T) {
	testutil.RequiresRoot(t)
	r := &Runtime{dir: testutil.TempDir(t), log: slog.New(slog.DiscardHandler)}
	// A directory where the template should be: it opens, but has no
	// data to seek to.
	if err := os.MkdirAll(r.path("disks", "ext4-v1-16.img"), 0o700); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(r.dir, "disk.img")
	if err := r.newDisk(context.Background(), img, 16); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("dumpe2fs", "-h", img).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Block count:") {
		t.Errorf("disk made: not an ext4 file system: %v: %s", err, out)
	}
}
