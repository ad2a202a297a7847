package files

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/internal/chunkio"
)

// syncEvery is how much of an upload is written between two background
// syncs (see fileWriter).
const syncEvery = 32 << 20

// copyToFile copies src to f, in writes of copyBufSize filled as far as src
// allows (an upload arrives in pieces of a few KiB; the file gets few big
// writes), and has the kernel write the file to disk as it grows: every
// syncEvery bytes a goroutine runs fdatasync, overlapping the disk with
// the transfer, so that the fsync that makes the file durable at the end
// (the caller's) finds little left to do. Without that, the final fsync of
// a big upload waits for all of it to reach the disk. (sync_file_range
// would start the writeback more cheaply, but is a no-op on overlayfs,
// the sandbox's root file system.)
//
// It returns the bytes written and the first error: src's (as it is), or
// the file's, wrapped in a *fileWriteError.
func copyToFile(f *os.File, src io.Reader) (int64, error) {
	buf := make([]byte, copyBufSize)
	var bg backgroundSync
	defer bg.stop()
	var n int64
	unsynced := 0
	for {
		m, rerr := chunkio.Fill(src, buf)
		if m > 0 {
			if _, err := f.Write(buf[:m]); err != nil {
				return n, &fileWriteError{err}
			}
			n += int64(m)
			if unsynced += m; unsynced >= syncEvery {
				bg.kick(f)
				unsynced = 0
			}
		}
		if rerr == io.EOF {
			if err := bg.stop(); err != nil {
				return n, &fileWriteError{err}
			}
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// fileWriteError is an error of the file side of copyToFile.
type fileWriteError struct{ err error }

func (e *fileWriteError) Error() string { return e.err.Error() }
func (e *fileWriteError) Unwrap() error { return e.err }

// backgroundSync runs fdatasync on a file in a goroutine of its own, at
// most one at a time, started on the first kick. stop waits for it and
// returns the first error it had: the kernel reports a failed writeback
// to one fsync only, which may be this one rather than the final one.
type backgroundSync struct {
	once  sync.Once
	kicks chan *os.File // owned by kick and stop
	done  chan struct{}
	err   error // set by the goroutine, read after done
}

func (b *backgroundSync) kick(f *os.File) {
	b.once.Do(func() {
		b.kicks, b.done = make(chan *os.File, 1), make(chan struct{})
		go func() {
			defer close(b.done)
			for f := range b.kicks {
				if err := fdatasync(f); err != nil && b.err == nil {
					b.err = err
				}
			}
		}()
	})
	select {
	case b.kicks <- f:
	default: // a sync is waiting to run already
	}
}

// stop ends the goroutine, if any, and returns its first error. It may be
// called more than once.
func (b *backgroundSync) stop() error {
	if b.kicks == nil {
		return nil
	}
	close(b.kicks)
	b.kicks = nil
	<-b.done
	return b.err
}

func fdatasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			if serr = unix.Fdatasync(int(fd)); !errors.Is(serr, unix.EINTR) {
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("fdatasync %s: %w", f.Name(), serr)
	}
	return nil
}

// bigCopyWriter gives a response writer a ReadFrom that copies in pieces
// of copyBufSize: http.ServeContent copies a file with io.Copy, whose
// buffer (32 KiB, the server's own, over a Unix socket) would cost two
// system calls per 32 KiB.
type bigCopyWriter struct{ http.ResponseWriter }

func (w bigCopyWriter) ReadFrom(src io.Reader) (int64, error) {
	return io.CopyBuffer(struct{ io.Writer }{w.ResponseWriter}, src, make([]byte, copyBufSize))
}

// Unwrap lets http.ResponseController find the writer underneath.
func (w bigCopyWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
