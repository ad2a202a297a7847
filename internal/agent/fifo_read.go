package agent

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

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

// readAvailable reads into buf what f holds now, without waiting, until
// buf is full or f is empty, and returns how many bytes it read.
func readAvailable(f *os.File, buf []byte) int {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0
	}
	n := 0
	_ = rc.Read(func(fd uintptr) bool {
		for n < len(buf) {
			m, err := unix.Read(int(fd), buf[n:])
			if m <= 0 || err != nil {
				break
			}
			n += m
		}
		return true // done, whatever happened: never wait here
	})
	return n
}
