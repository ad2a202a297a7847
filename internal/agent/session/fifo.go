package session

import (
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/internal/agent/core"
)

// fifoSize is the capacity asked for output FIFOs, and the read size.
const fifoSize = 1 << 20

// fifoBufs holds read buffers of fifoSize.
var fifoBufs = sync.Pool{New: func() any { b := make([]byte, fifoSize); return &b }}

// How a command's output is read in big pieces when it writes a lot. A
// read of a FIFO returns what is there, so the agent, faster than a busy
// command, would read it in the command's own small writes (a few KiB
// each), each an event with its cost on every hop to the client. Once a
// command has written coalesceAfter bytes, a read that got less than
// coalesceBelow waits coalesceWait and takes what came meanwhile too. A
// command that writes little is never delayed; a stream's chunks come
// at most about coalesceWait late.
const (
	coalesceAfter = 1 << 20
	coalesceBelow = 256 << 10
	coalesceWait  = time.Millisecond
)

// fifo is the agent's end of a command's output FIFO. The agent holds a
// write end too, so that reads do not see end-of-file before the shell has
// opened the FIFO; drain drops it once the command has finished.
//
// Both ends are plain descriptors, kept out of Go's netpoller: copyTo
// waits in poll(2). A pipe that has once been in an epoll set wakes that
// set's waiter on every write (the kernel's "poll_usage" rule), and the
// agent's idle thread sits in epoll_wait while copyTo sleeps to coalesce:
// a command writing 8 KiB at a time woke it some 130,000 times per GiB,
// and paid for each wake-up in its own write. A poll(2) waiter is on the
// pipe only while it waits.
type fifo struct {
	fd       int          // read end, O_NONBLOCK
	wfd      int          // the agent's write end, until drain
	wake     int          // eventfd: drain tells a waiting copyTo
	deadline atomic.Int64 // set by drain: when copyTo stops (since fifoEpoch)
	once     sync.Once    // drain or close, once
	// wakeRefs counts copyTo and drain: the last of the two to be done
	// with wake closes it (neither writes to a number reused meanwhile).
	wakeRefs atomic.Int32
}

func openFifo(path string) (*fifo, error) {
	if err := unix.Mkfifo(path, 0o600); err != nil {
		return nil, err
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	// A bigger pipe means bigger reads, so fewer events and syscalls on
	// every hop when a command writes a lot. (Best effort: the limit is
	// /proc/sys/fs/pipe-max-size.)
	_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETPIPE_SZ, fifoSize)
	wfd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(fd)
		unix.Close(wfd)
		return nil, os.NewSyscallError("eventfd", err)
	}
	f := &fifo{fd: fd, wfd: wfd, wake: wake}
	f.wakeRefs.Store(2)
	return f, nil
}

// copyTo delivers what is read to fn until end-of-file, or until the
// deadline drain sets; what is left in the FIFO then is delivered without
// waiting. Output of background children after that is discarded by a
// goroutine that reads until they close the FIFO, so they never get
// SIGPIPE for outliving the command. It owns the read end and closes it.
func (f *fifo) copyTo(fn func([]byte)) {
	defer f.unrefWake()
	bp := fifoBufs.Get().(*[]byte)
	defer fifoBufs.Put(bp)
	buf := *bp
	total := 0
	for {
		// drain's deadline ends the copy even while data keeps coming
		// (a background child that writes on and on).
		if f.pastDeadline() {
			f.stopCopy(fn, buf)
			return
		}
		n, err := unix.Read(f.fd, buf)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			if !f.wait() {
				f.stopCopy(fn, buf)
				return
			}
			continue
		case err != nil || n == 0: // end-of-file: every writer is gone
			unix.Close(f.fd)
			return
		}
		if n < coalesceBelow && total >= coalesceAfter { // see coalesceWait
			time.Sleep(coalesceWait)
			n += readAvailable(f.fd, buf[n:])
		}
		total += n
		fn(buf[:n])
	}
}

// stopCopy ends copyTo once drain's deadline has passed: what is in the
// FIFO now is delivered (up to 1 MiB), and the rest goes to a reader in
// the netpoller that discards it: nothing is streamed any more, and a
// background child may hold the FIFO for hours.
func (f *fifo) stopCopy(fn func([]byte), buf []byte) {
	readNowFd(f.fd, fn, buf)
	go core.Discard(os.NewFile(uintptr(f.fd), "fifo"))
}

// fifoEpoch is what deadlines count from: a monotonic clock, which a step
// of the wall clock does not move.
var fifoEpoch = time.Now()

// pastDeadline reports whether drain's deadline has passed.
func (f *fifo) pastDeadline() bool {
	d := f.deadline.Load()
	return d != 0 && time.Since(fifoEpoch) >= time.Duration(d)
}

// wait waits in poll(2) until the FIFO can be read (or its writers are
// gone), and reports false once drain's deadline has passed. Each waiting
// copyTo holds an OS thread in poll(2) (two for a running command, until
// it ends).
func (f *fifo) wait() bool {
	fds := []unix.PollFd{{Fd: int32(f.fd), Events: unix.POLLIN}, {Fd: int32(f.wake), Events: unix.POLLIN}}
	for {
		timeout := -1
		if d := f.deadline.Load(); d != 0 {
			left := time.Duration(d) - time.Since(fifoEpoch)
			if left <= 0 {
				return false
			}
			timeout = int((left + time.Millisecond - 1) / time.Millisecond)
		}
		fds[0].Revents, fds[1].Revents = 0, 0
		if _, err := unix.Poll(fds, timeout); err != nil {
			if err != unix.EINTR {
				time.Sleep(10 * time.Millisecond) // ENOMEM: again, shortly
			}
			continue
		}
		if fds[0].Revents != 0 {
			return true
		}
		if fds[1].Revents != 0 {
			var b [8]byte
			_, _ = unix.Read(f.wake, b[:]) // drain has set the deadline
		}
	}
}

// drain is called once the command has finished: the agent's write end
// goes, so that the reads end when the command's writers are gone, and
// copyTo stops waiting for any that are not after core.DrainGrace.
func (f *fifo) drain() {
	f.once.Do(func() {
		unix.Close(f.wfd)
		f.deadline.Store(int64(time.Since(fifoEpoch) + core.DrainGrace))
		one := [8]byte{1}
		_, _ = unix.Write(f.wake, one[:])
		f.unrefWake()
	})
}

func (f *fifo) unrefWake() {
	if f.wakeRefs.Add(-1) == 0 {
		unix.Close(f.wake)
	}
}

// close releases a FIFO that copyTo never ran on.
func (f *fifo) close() {
	f.once.Do(func() {
		unix.Close(f.wfd)
		unix.Close(f.fd)
		unix.Close(f.wake)
	})
}

// readAvailable reads into buf what fd holds now, without waiting, until
// buf is full or fd is empty, and returns how many bytes it read.
func readAvailable(fd int, buf []byte) int {
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if m <= 0 || err != nil {
			break
		}
		n += m
	}
	return n
}

// readNowFd delivers what is in fd to fn without waiting (at most 1 MiB),
// read into buf.
func readNowFd(fd int, fn func([]byte), buf []byte) {
	for total := 0; total < 1<<20; {
		n := readAvailable(fd, buf)
		if n == 0 {
			return
		}
		fn(buf[:n])
		total += n
	}
}
