// Package netns connects from the host to TCP ports inside another
// process's network namespace (a sandbox's), without publishing any port
// and without a relay process.
//
// A socket belongs to the network namespace of the thread that created it,
// for its whole life, whatever thread uses it later. A Dialer therefore
// makes each socket on a goroutine locked to an OS thread that joins the
// sandbox's namespace (setns through a pidfd of the sandbox's init, so a
// reused pid cannot redirect it), calls socket(2) and goes back to the
// host's namespace at once; the connect (net.Dialer's) and everything
// after it run on any thread. A thread that cannot go back is never given
// back to the Go scheduler: its goroutine ends locked, which ends the
// thread.
package netns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrClosed is returned by a Dialer's DialPort after Close.
var ErrClosed = errors.New("netns: dialer closed")

// hostNS opens the daemon's own network namespace, where every thread not
// locked by a Dialer lives: once, from such a thread; it is never closed.
var hostNS = sync.OnceValues(func() (fd int, err error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		// A thread of the scheduler's pool: in the host's namespace
		// (every Dialer thread goes back before being unlocked).
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		fd, err = unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	}()
	<-done
	return fd, err
})

// Dialer connects to ports on the loopback of one process's network
// namespace. It is safe for concurrent use.
type Dialer struct {
	pidfd *os.File // closing it waits for setns calls using it (SyscallConn)
}

// Open returns a Dialer into the network namespace of process pid. verify
// is called once the pid is pinned (a pidfd is open on it) and must tell
// whether it is still the expected process (for example by its start
// time); if not, Open fails. Open also fails if this process may not enter
// the namespace. Close the Dialer when done.
func Open(pid int, verify func() bool) (*Dialer, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("netns: pidfd of %d: %w", pid, err)
	}
	d := &Dialer{pidfd: os.NewFile(uintptr(fd), "pidfd:"+strconv.Itoa(pid))}
	if !verify() {
		d.Close()
		return nil, fmt.Errorf("netns: process %d is not the expected one", pid)
	}
	// Probe: enter and leave once, so that a daemon without the right
	// (no CAP_SYS_ADMIN over the namespace) finds out now, not per dial.
	if err := d.inNamespace(func() error { return nil }); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// Close releases the Dialer. Connections made by it stay open.
func (d *Dialer) Close() error { return d.pidfd.Close() }

// inNamespace runs f on a thread inside the namespace, and returns the
// thread to the host's namespace after f, or ends it.
func (d *Dialer) inNamespace(f func() error) error {
	hostFd, err := hostNS()
	if err != nil {
		return fmt.Errorf("netns: host namespace: %w", err)
	}
	rc, err := d.pidfd.SyscallConn()
	if err != nil {
		return ErrClosed
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		var ferr error
		back := true
		cerr := rc.Control(func(pidfd uintptr) {
			if err := unix.Setns(int(pidfd), unix.CLONE_NEWNET); err != nil {
				ferr = fmt.Errorf("netns: enter: %w", err)
				return // never left
			}
			ferr = f()
			back = unix.Setns(hostFd, unix.CLONE_NEWNET) == nil
		})
		if cerr != nil { // closed: Control did not run f
			ferr = ErrClosed
		}
		if !back {
			// This thread is stuck in the sandbox's namespace: it stays
			// locked and ends with this goroutine.
			errc <- errors.New("netns: could not return to the host's network namespace")
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// DialPort connects to port on the namespace's loopback: 127.0.0.1, or
// ::1 if nothing accepts there (a server bound to "localhost" may have
// picked ::1 alone, as Node does). A refused connection gives an error
// wrapping syscall.ECONNREFUSED.
func (d *Dialer) DialPort(ctx context.Context, port int) (net.Conn, error) {
	c, err := d.dial(ctx, "127.0.0.1:"+strconv.Itoa(port))
	if err != nil && errors.Is(err, syscall.ECONNREFUSED) {
		if c6, err6 := d.dial(ctx, "[::1]:"+strconv.Itoa(port)); err6 == nil {
			return c6, nil
		}
	}
	return c, err
}

// dial connects to addr with net.Dialer, whose Control hook (called after
// the dialer made its socket, in the host's namespace, and before it
// connects or registers the socket with the poller) puts a socket made in
// the namespace in its place with dup3. The dialer then connects it,
// waiting and giving up with ctx as for any connection.
func (d *Dialer) dial(ctx context.Context, addr string) (net.Conn, error) {
	nd := net.Dialer{Control: func(network, _ string, rc syscall.RawConn) error {
		family := unix.AF_INET
		if network == "tcp6" {
			family = unix.AF_INET6
		}
		var err error
		if cerr := rc.Control(func(fd uintptr) { err = d.replace(int(fd), family) }); cerr != nil {
			return cerr
		}
		return err
	}}
	return nd.DialContext(ctx, "tcp", addr)
}

// replace makes fd refer to a new stream socket of family made in the
// namespace.
func (d *Dialer) replace(fd, family int) error {
	ns := -1
	err := d.inNamespace(func() error {
		s, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err == nil {
			ns = s
		}
		return err
	})
	if ns >= 0 {
		defer unix.Close(ns)
	}
	if err != nil {
		return fmt.Errorf("netns: socket: %w", err)
	}
	return unix.Dup3(ns, fd, unix.O_CLOEXEC)
}
