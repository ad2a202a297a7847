package core

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

// DrainGrace is how long exec keeps reading output after the command
// exited, for a background child that holds the pipes open and still
// writes. Bytes the command wrote before it exited are never lost to it.
const DrainGrace = 100 * time.Millisecond

// EncodeOutput returns b as a JSON-safe string: as it is if it is valid
// UTF-8 without NUL, else base64 (and the encoding's name).
func EncodeOutput(b []byte) (string, string) {
	if utf8.Valid(b) && !strings.ContainsRune(string(b), 0) {
		return string(b), ""
	}
	return base64.StdEncoding.EncodeToString(b), api.EncodingBase64
}

// ExitCode follows the shell's convention: 128+N for death by signal N.
func ExitCode(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// MergeEnv returns base with vars set on top of it.
func MergeEnv(base []string, vars map[string]string) []string {
	if len(vars) == 0 {
		return base
	}
	out := make([]string, 0, len(base)+len(vars))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := vars[k]; !ok {
			out = append(out, kv)
		}
	}
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	return out
}

func CopyEnv(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// StartError maps a failed process start to the API's classes.
func StartError(err error) error {
	if errors.Is(err, unix.EAGAIN) {
		return fmt.Errorf("%w: cannot start a process: the sandbox's process limit is reached", errdefs.ErrResourceExhausted)
	}
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return fmt.Errorf("%w: %v", errdefs.ErrInvalidArgument, err)
	}
	return fmt.Errorf("start process: %w", err)
}

// ReadNow reads what is in f without waiting (at most 1 MiB).
func ReadNow(f *os.File, fn func([]byte)) {
	_ = f.SetReadDeadline(time.Time{})
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	buf := make([]byte, 64<<10)
	_ = rc.Read(func(fd uintptr) bool {
		for total := 0; total < 1<<20; {
			n, err := unix.Read(int(fd), buf)
			if n <= 0 || err != nil {
				break
			}
			fn(buf[:n])
			total += n
		}
		return true // done, whatever happened: never wait here
	})
}

// Discard reads f until its writers are gone, then closes it.
func Discard(f *os.File) {
	_, _ = io.Copy(io.Discard, f)
	f.Close()
}

// SyncDir makes a rename in dir durable, as far as the filesystem allows.
func SyncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// IDPattern is what a caller-given ID of a session, process or terminal
// must match: 1-64 characters of [A-Za-z0-9._-], starting with a letter or
// digit.
var IDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
