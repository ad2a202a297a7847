package agent

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// markerVar is set, to a value unique to each command, in the environment
// of every command the agent starts. Descendants inherit it, so a process
// that left the command's tree (a daemon that double-forked and was
// re-parented to PID 1) is still known to belong to the command.
const markerVar = "SANDBOX_EXEC_ID"

func newMarker() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// killTree kills root, every process descended from it, and every process
// whose environment carries marker. Members are stopped first, round after
// round until no new one appears, so that none can fork a process the kill
// would miss; then all are killed.
func killTree(root int, marker string) {
	self := os.Getpid()
	stopped := map[int]bool{}
	for round := 0; round < 100; round++ {
		found := false
		for _, pid := range members(root, marker) {
			if pid == self || pid == 1 || stopped[pid] {
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
	_ = unix.Kill(root, unix.SIGKILL)
}

// members lists root's descendants (root included) and the processes whose
// environment holds markerVar=marker.
func members(root int, marker string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return []int{root}
	}
	want := []byte(markerVar + "=" + marker + "\x00")
	children := map[int][]int{}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid := parentOf(pid); ppid > 0 {
			children[ppid] = append(children[ppid], pid)
		}
		if env, err := os.ReadFile("/proc/" + e.Name() + "/environ"); err == nil && bytes.Contains(env, want) {
			out = append(out, pid)
		}
	}
	queue := []int{root}
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
