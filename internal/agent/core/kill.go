package core

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Environment markers. Every process the agent starts carries, in its
// environment, a marker unique to what it belongs to; descendants inherit
// it, so a process that left the tree (a daemon that double-forked and was
// re-parented to PID 1) is still known to belong to its command.
const (
	ExecMarkerVar    = "SANDBOX_EXEC_ID"    // one command (exec) or process
	SessionMarkerVar = "SANDBOX_SESSION_ID" // everything a session's shell started
)

// Marker returns a new "NAME=value" marker.
func Marker(name string) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return name + "=" + hex.EncodeToString(b)
}

// KillTree kills the roots, every process descended from them, and every
// process whose environment carries one of markers ("NAME=value"). Members
// are stopped first, round after round until no new one appears, so that
// none can fork a process the kill would miss; then all are killed.
func KillTree(roots []int, markers ...string) {
	self := os.Getpid()
	stopped := map[int]bool{}
	for round := 0; round < 100; round++ {
		found := false
		for _, pid := range members(roots, markers) {
			if pid <= 1 || pid == self || stopped[pid] { // -1 would be every process
				continue
			}
			_ = unix.Kill(pid, unix.SIGSTOP)
			stopped[pid] = true
			found = true
		}
		if !found {
			break
		}
	}
	for pid := range stopped {
		_ = unix.Kill(pid, unix.SIGKILL)
	}
}

// SignalTree sends sig to the same members as KillTree would kill, without
// stopping them first: for a polite SIGTERM before the kill.
func SignalTree(sig unix.Signal, roots []int, markers ...string) int {
	self, n := os.Getpid(), 0
	for _, pid := range members(roots, markers) {
		if pid > 1 && pid != self && unix.Kill(pid, sig) == nil {
			n++
		}
	}
	return n
}

// members lists the roots' descendants (roots included) and the processes
// whose environment holds one of markers.
func members(roots []int, markers []string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return roots
	}
	want := make([][]byte, len(markers))
	for i, m := range markers {
		want[i] = []byte(m + "\x00")
	}
	children := map[int][]int{}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if len(roots) > 0 {
			if ppid := parentOf(pid); ppid > 0 {
				children[ppid] = append(children[ppid], pid)
			}
		}
		if len(want) == 0 {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue
		}
		for _, w := range want {
			// A marker is a whole variable: at the start, or after a NUL.
			if bytes.HasPrefix(env, w) || bytes.Contains(env, append([]byte{0}, w...)) {
				out = append(out, pid)
				break
			}
		}
	}
	queue := append([]int(nil), roots...)
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		out = append(out, pid)
		queue = append(queue, children[pid]...)
	}
	return out
}

// parentOf returns pid's parent from /proc/PID/stat, or 0.
func parentOf(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// ChildrenOf lists pid's children (of its main thread).
func ChildrenOf(pid int) []int {
	p := strconv.Itoa(pid)
	b, err := os.ReadFile("/proc/" + p + "/task/" + p + "/children")
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}
