package runc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/internal/errdefs"
	"github.com/sandboxd/sandboxd/internal/runtime"
)

// A sandbox with a disk quota (docs/OPERATIONS.md, Disk quotas) keeps its
// writable layer in a file system of its own: disk.img, a sparse ext4 file
// loop-mounted at disk/ while the sandbox runs, holding disk/upper and
// disk/work, so a sandbox that writes forever fills its own file system
// (ENOSPC inside, inodes included), never the host's. The loop device is
// attached with LO_FLAGS_AUTOCLEAR: it detaches itself once the mount (or
// the daemon's descriptor, if the daemon dies before mounting) goes. A
// sandbox without a quota (DiskMB 0) has upper/ and work/ directly in its
// directory, on the host's file system.
const (
	diskFile  = "disk.img"
	diskMount = "disk"
)

// layers returns the directories of a sandbox's writable layer, and whether
// it lives on its own quota file system (disk.img exists).
func layers(dir string) (upper, work string, quota bool) {
	if _, err := os.Stat(filepath.Join(dir, diskFile)); err == nil {
		m := filepath.Join(dir, diskMount)
		return filepath.Join(m, "upper"), filepath.Join(m, "work"), true
	}
	return filepath.Join(dir, "upper"), filepath.Join(dir, "work"), false
}

// prepareLayers makes sure the writable layer of a sandbox exists and is
// mounted, and returns its upper and work directories. A new sandbox (no
// upper/ and no disk.img yet) gets a quota file system of diskMB MiB if
// diskMB > 0; an existing one keeps what it was created with.
func (r *Runtime) prepareLayers(ctx context.Context, dir, hostname string, uid int, diskMB int64) (upper, work string, err error) {
	upper, work, quota := layers(dir)
	fresh := false // the disk was formatted just now
	if _, err := os.Stat(upper); !quota && diskMB > 0 && errors.Is(err, os.ErrNotExist) {
		if err := r.newDisk(ctx, filepath.Join(dir, diskFile), diskMB); err != nil {
			return "", "", err
		}
		upper, work, quota = layers(dir)
		fresh = true
	}
	if quota {
		mnt := filepath.Join(dir, diskMount)
		if err := os.MkdirAll(mnt, 0o700); err != nil {
			return "", "", err
		}
		if err := mountDisk(filepath.Join(dir, diskFile), mnt, fresh); err != nil {
			return "", "", err
		}
	}
	if err := os.MkdirAll(work, 0o700); err != nil {
		return "", "", err
	}
	if _, err := os.Stat(upper); errors.Is(err, os.ErrNotExist) {
		if err := prepareUpper(upper, hostname, uid); err != nil {
			return "", "", fmt.Errorf("prepare upper layer: %w", err)
		}
	}
	return upper, work, nil
}

// maxDiskTemplates bounds the disk sizes whose empty file system is kept
// as a template (newDisk).
const maxDiskTemplates = 8

// newDisk creates path as a sparse file of sizeMB MiB holding an empty
// ext4 file system: a copy of a template formatted once per size (the
// first disks of maxDiskTemplates sizes), else formatted anew. Copying
// the template's few allocated MiB costs a fraction of a format's CPU.
// The copies share the template's file system UUID, which ext4 does not
// need to be unique.
func (r *Runtime) newDisk(ctx context.Context, path string, sizeMB int64) error {
	sizeMB = max(sizeMB, runtime.MinDiskMB)
	tmpl, err := r.diskTemplate(ctx, sizeMB)
	if err != nil {
		return err
	}
	if tmpl != "" {
		err := copySparse(tmpl, path)
		if err == nil {
			return nil
		}
		// Such as a file system without copy_file_range between the
		// two directories.
		r.log.Warn("copy disk template; formatting instead", "template", tmpl, "err", err)
	}
	return formatDisk(ctx, path, sizeMB)
}

// diskTemplate returns the template of disks of sizeMB MiB, formatting it
// if it is missing, or "" if there are maxDiskTemplates of other sizes.
func (r *Runtime) diskTemplate(ctx context.Context, sizeMB int64) (string, error) {
	r.disksMu.Lock()
	defer r.disksMu.Unlock()
	tmpl := r.path("disks", fmt.Sprintf("ext4-v1-%d.img", sizeMB))
	if _, err := os.Stat(tmpl); err == nil {
		return tmpl, nil
	}
	if names, _ := filepath.Glob(r.path("disks", "ext4-*.img")); len(names) >= maxDiskTemplates {
		return "", nil
	}
	if err := os.MkdirAll(filepath.Dir(tmpl), 0o700); err != nil {
		return "", err
	}
	if err := formatDisk(ctx, tmpl, sizeMB); err != nil {
		return "", err
	}
	return tmpl, nil
}

// copySparse copies the file src to dst, a new file, holes and all: only
// src's data extents are copied (copy_file_range), and dst is synced
// before it takes its name, so a crash leaves either no dst or a whole
// one.
func copySparse(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("disk template: %w", err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return fmt.Errorf("disk template: %w", err)
	}
	tmp := dst + ".tmp"
	_ = os.Remove(tmp)
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("disk file: %w", err)
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp, dst)
		}
		if err != nil {
			os.Remove(tmp)
			err = fmt.Errorf("disk file from %s: %w", src, err)
		}
	}()
	size := fi.Size()
	if err := out.Truncate(size); err != nil {
		return err
	}
	ifd, ofd := int(in.Fd()), int(out.Fd())
	for off := int64(0); off < size; {
		data, err := unix.Seek(ifd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole is left
		}
		if err != nil {
			return err
		}
		hole, err := unix.Seek(ifd, data, unix.SEEK_HOLE)
		if err != nil {
			return err
		}
		roff, woff := data, data
		for roff < hole {
			n, err := unix.CopyFileRange(ifd, &roff, ofd, &woff, int(hole-roff), 0)
			if err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("copy %s: short at %d of %d", src, roff, hole)
			}
		}
		off = hole
	}
	return out.Sync()
}

// formatDisk creates path as a sparse file of sizeMB MiB (at least
// runtime.MinDiskMB) holding an empty ext4 file system. It formats a
// temporary file first, so a crash leaves either no disk or a whole one.
func formatDisk(ctx context.Context, path string, sizeMB int64) (err error) {
	sizeMB = max(sizeMB, runtime.MinDiskMB)
	tmp := path + ".tmp"
	_ = os.Remove(tmp)
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("disk file: %w", err)
	}
	err = f.Truncate(sizeMB << 20)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, unix.EFBIG) {
		// ext4 with 4 KiB blocks: files end before 16 TiB.
		return fmt.Errorf("%w: a disk of %d MiB is larger than the host's file system allows: %v", errdefs.ErrInvalidArgument, sizeMB, err)
	}
	if err != nil {
		return fmt.Errorf("disk file: %w", err)
	}
	// -b 4096: the loop device's block size (small file systems would
	// get 1 KiB blocks, which it cannot mount). -m 0: no blocks reserved
	// for root, the sandbox gets all it asked for. Lazy inode table and
	// journal init: the file is sparse, its unwritten blocks read as zeros
	// already (and discard, on by default, tells mke2fs so, which marks
	// the inode tables zeroed: no background zeroing after mount either).
	// The journal stays: a host crash must not cost a sandbox its files.
	cmd := exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-b", "4096", "-m", "0", "-E", "lazy_itable_init=1,lazy_journal_init=1", tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return fmt.Errorf("disk quota needs mkfs.ext4 (apt-get install e2fsprogs): %w", err)
		}
		return fmt.Errorf("format disk: %w: %s", err, bytes.TrimSpace(out))
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("disk file: %w", err)
	}
	return nil
}

// mountDisk mounts the ext4 image img at target through a free loop
// device. fresh says img was formatted just now, so no loop device has
// ever held it.
func mountDisk(img, target string, fresh bool) error {
	// The image's previous loop device may still be bound, its file
	// system held by a mount namespace made meanwhile (see unmountDisk).
	// A second device on the same image would mount a second, separate
	// ext4 over the same blocks, and the two would corrupt each other:
	// wait (at most 10 s) for the first to go. Looking costs a read of
	// the device the image's record names (loopRecord), a walk of every
	// loop device in sysfs without one (tens of ms on a host with
	// hundreds of them); a fresh disk skips it.
	deadline := time.Now().Add(10 * time.Second)
	for !fresh {
		devs := loopDevicesStillBacking(img)
		if len(devs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: disk %s is still attached to %s; try again", errdefs.ErrUnavailable, img, strings.Join(devs, ", "))
		}
		time.Sleep(5 * time.Millisecond)
	}
	dev, loop, err := attachLoop(img)
	if err != nil {
		return err
	}
	// Closing our descriptor leaves the mount as the loop device's only
	// user: unmounting it then detaches the device (autoclear).
	defer loop.Close()
	if err := unix.Mount(dev, target, "ext4", unix.MS_NODEV|unix.MS_NOSUID|unix.MS_NOATIME, "discard"); err != nil {
		return fmt.Errorf("mount disk %s at %s: %w", img, target, err)
	}
	return nil
}

// attachLoop binds img to a free loop device with LOOP_CONFIGURE and
// returns the device's path and an open descriptor of it. The device
// detaches itself once the last descriptor and mount are gone.
func attachLoop(img string) (string, *os.File, error) {
	back, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		return "", nil, fmt.Errorf("disk file: %w", err)
	}
	defer back.Close() // the loop device holds its own reference
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return "", nil, fmt.Errorf("loop devices: %w", err)
	}
	defer ctl.Close()
	direct := true
	for attempt := 0; ; attempt++ {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return "", nil, fmt.Errorf("find a free loop device: %w", err)
		}
		dev := "/dev/loop" + strconv.Itoa(n)
		// Recorded before it may hold img: a record that names a
		// device which never did is harmless, one missing is not.
		if err := os.WriteFile(loopRecord(img), []byte(dev+"\n"), 0o600); err != nil {
			return "", nil, fmt.Errorf("disk %s: record its loop device: %w", img, err)
		}
		// devtmpfs has made the node by the time GET_FREE returns.
		loop, err := os.OpenFile(dev, os.O_RDWR, 0)
		if err != nil {
			return "", nil, fmt.Errorf("open %s: %w", dev, err)
		}
		cfg := unix.LoopConfig{Fd: uint32(back.Fd()), Size: 4096}
		cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
		if direct {
			// Direct I/O: the sandbox's writes are cached once, in its
			// own file system (and its own memory cgroup), not a
			// second time in the host's cache of disk.img.
			cfg.Info.Flags |= unix.LO_FLAGS_DIRECT_IO
		}
		copy(cfg.Info.File_name[:len(cfg.Info.File_name)-1], img)
		err = unix.IoctlLoopConfigure(int(loop.Fd()), &cfg)
		if err == nil {
			return dev, loop, nil
		}
		loop.Close()
		switch {
		case errors.Is(err, unix.EBUSY) && attempt < 100:
			// Another attach took this device between GET_FREE and
			// CONFIGURE.
			continue
		case errors.Is(err, unix.EINVAL) && direct:
			// The backing file system refuses direct I/O (or this
			// block size): fall back to buffered.
			direct = false
			continue
		}
		return "", nil, fmt.Errorf("attach %s to %s: %w", img, dev, err)
	}
}

// unmountDisk unmounts a sandbox's quota file system, if mounted, and waits
// (at most 2 s) for its loop device to detach. Call it after the
// overlay above it is gone.
//
// The device detaches when the file system's last mount goes, and a mount
// namespace made meanwhile holds copies of the host's mounts: another
// sandbox's runc, between its unshare and its pivot_root, keeps this one's
// file system for a few milliseconds more. Waiting for that makes Stop
// leave no device behind; a device held longer detaches on its own later.
func unmountDisk(dir string) error {
	mnt := filepath.Join(dir, diskMount)
	mounts, err := mountsUnder(mnt)
	if err != nil || len(mounts) == 0 {
		return err
	}
	if err := unmount(mnt); err != nil {
		return err
	}
	deadline := time.Now().Add(2 * time.Second)
	for len(loopDevicesStillBacking(filepath.Join(dir, diskFile))) > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// loopRecord is the file beside a disk image naming the loop device last
// attached to it ("/dev/loopN"): looking for that device then costs a read
// or two, not a walk of every loop device in sysfs.
func loopRecord(img string) string { return img + ".loop" }

// loopDevicesStillBacking lists the loop devices that still have img as
// their backing file: the one its loopRecord names, if it does; without a
// record (a disk attached by an older daemon), every one that does.
func loopDevicesStillBacking(img string) []string {
	b, err := os.ReadFile(loopRecord(img))
	name := filepath.Base(strings.TrimSpace(string(b)))
	if err != nil || !strings.HasPrefix(name, "loop") {
		return loopDevicesBacking(img)
	}
	if p, err := filepath.EvalSymlinks(img); err == nil {
		img = p
	}
	back, err := os.ReadFile(filepath.Join("/sys/block", name, "loop", "backing_file"))
	if err != nil || strings.TrimSpace(string(back)) != img {
		return nil // detached, or since attached to another file
	}
	return []string{"/dev/" + name + " (" + img + ")"}
}

// loopDevices lists the loop devices whose backing file, as the kernel
// shows it (resolved; " (deleted)" appended once unlinked), satisfies
// match, as "/dev/loopN (file)".
func loopDevices(match func(back string) bool) []string {
	files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if back := strings.TrimSpace(string(b)); err == nil && match(back) {
			out = append(out, "/dev/"+filepath.Base(filepath.Dir(filepath.Dir(f)))+" ("+back+")")
		}
	}
	return out
}

// loopDevicesBacking lists the loop devices whose backing file is img
// itself (not a deleted file that had its name).
func loopDevicesBacking(img string) []string {
	if p, err := filepath.EvalSymlinks(img); err == nil {
		img = p
	}
	return loopDevices(func(back string) bool { return back == img })
}

// loopDevicesOf lists the loop devices whose backing file is under dir,
// deleted or not.
func loopDevicesOf(dir string) []string {
	return loopDevices(func(back string) bool {
		back = strings.TrimSuffix(back, " (deleted)")
		return back == dir || strings.HasPrefix(back, dir+"/")
	})
}
