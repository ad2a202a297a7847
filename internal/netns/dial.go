// Package netns connects from the host to TCP ports inside another
// process's network namespace (a sandbox's), without publishing any port
// and without a relay process.
//
// A socket belongs to the network namespace of the thread that created it,
// for its whole life, whatever thread uses it later. A Dialer therefore
// makes each socket on a goroutine locked to an OS thread that joins the
// sandbox's namespace (setns through a pidfd of the sandbox's init, so a
// reused pid cannot redirect it), calls socket(2) and goes back to the
// host's namespace at once; the connect and everything after it run on any
// thread. A thread that cannot go back is never given back to the Go
// scheduler: its goroutine ends locked, which ends the thread.
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
	"time"

	"golang.org/x/sys/unix"
)

// ErrClosed is returned by a Dialer's DialPort after Close.
var ErrClosed = errors.New("netns: dialer closed")

// host is the daemon's own network namespace, where every thread not
// locked by a Dialer lives: opened once, from such a thread, and never
// closed.
var host struct {
	once sync.Once
	fd   int
	err  error
}

func hostNS() (int, error) {
	host.once.Do(func() {
		done := make(chan struct{})
		go func() {
			defer close(done)
			// A thread of the scheduler's pool: in the host's namespace
			// (every Dialer thread goes back before being unlocked).
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			host.fd, host.err = unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		}()
		<-done
	})
	return host.fd, host.err
}

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
	if pid <= 0 {
		return nil, fmt.Errorf("netns: pid %d", pid)
	}
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
		entered, back := false, false
		cerr := rc.Control(func(pidfd uintptr) {
			if err := unix.Setns(int(pidfd), unix.CLONE_NEWNET); err != nil {
				ferr = fmt.Errorf("netns: enter: %w", err)
				back = true // never left
				return
			}
			entered = true
			ferr = f()
			back = unix.Setns(hostFd, unix.CLONE_NEWNET) == nil
		})
		if cerr != nil { // closed: Control did not run f
			back = !entered
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
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("netns: port %d", port)
	}
	c, err := d.dial(ctx, unix.AF_INET, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}, port)
	if err != nil && errors.Is(err, syscall.ECONNREFUSED) {
		if c6, err6 := d.dial(ctx, unix.AF_INET6, &unix.SockaddrInet6{Port: port, Addr: [16]byte{15: 1}}, port); err6 == nil {
			return c6, nil
		}
	}
	return c, err
}

func (d *Dialer) dial(ctx context.Context, family int, sa unix.Sockaddr, port int) (net.Conn, error) {
	fd := -1
	err := d.inNamespace(func() error {
		var err error
		fd, err = unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("netns: socket: %w", err)
	}
	raddr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
	if family == unix.AF_INET6 {
		raddr.IP = net.IPv6loopback
	}
	opErr := func(err error) error { return &net.OpError{Op: "dial", Net: "tcp", Addr: raddr, Err: err} }
	for {
		err = unix.Connect(fd, sa)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil && err != unix.EINPROGRESS {
		unix.Close(fd)
		return nil, opErr(os.NewSyscallError("connect", err))
	}
	f := os.NewFile(uintptr(fd), "tcp")
	fc, ferr := net.FileConn(f) // a dup, registered with the poller
	f.Close()
	if ferr != nil {
		return nil, opErr(ferr)
	}
	tc, ok := fc.(*net.TCPConn)
	if !ok {
		fc.Close()
		return nil, opErr(errors.New("not a TCP connection"))
	}
	if err == unix.EINPROGRESS {
		if err := waitConnected(ctx, tc); err != nil {
			tc.Close()
			return nil, opErr(err)
		}
	}
	return &conn{TCPConn: tc, raddr: raddr}, nil
}

// waitConnected waits for the non-blocking connect of c to finish, or ctx.
func waitConnected(ctx context.Context, c *net.TCPConn) error {
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetWriteDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetWriteDeadline(time.Unix(1, 0)) })
	rc, err := c.SyscallConn()
	if err != nil {
		stop()
		return err
	}
	var cerr error
	werr := rc.Write(func(fd uintptr) bool {
		v, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			cerr = os.NewSyscallError("getsockopt", err)
			return true
		}
		switch e := syscall.Errno(v); e {
		case 0:
			// No error yet: connected, or still connecting (a wake-up
			// before the end).
			if _, err := unix.Getpeername(int(fd)); err == nil {
				return true
			}
			return false
		case syscall.EINPROGRESS, syscall.EALREADY, syscall.EINTR:
			return false
		default:
			cerr = os.NewSyscallError("connect", e)
			return true
		}
	})
	if !stop() {
		// ctx ended: its deadline may be set on c now, or soon.
		return context.Cause(ctx)
	}
	if werr != nil {
		return werr
	}
	if cerr != nil {
		return cerr
	}
	return c.SetWriteDeadline(time.Time{})
}

// conn is a connection made by a Dialer: a *net.TCPConn whose
// RemoteAddr is known (net.FileConn learns none while connecting).
type conn struct {
	*net.TCPConn
	raddr net.Addr
}

func (c *conn) RemoteAddr() net.Addr { return c.raddr }
