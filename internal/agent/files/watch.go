package files

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agent/core"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

// Event types of a file watch (api.WatchEvent.EventType).
const (
	watchCreate = "create"
	watchModify = "modify"
	watchDelete = "delete"
	watchMove   = "move"
	// watchOverflow says changes were lost: the kernel's queue overflowed
	// (IN_Q_OVERFLOW), or the client read too slowly for the agent's
	// buffer. Its path is the watched directory. A client that needs an
	// exact picture looks at the files afresh; the watch goes on.
	watchOverflow = "overflow"
)

const (
	// watchQueueMax bounds the changes a watch buffers for a slow client;
	// past it, changes are dropped and an overflow event says so. The
	// reader of the inotify queue never waits for the client.
	watchQueueMax = 65536
	// watchReadBuf is the size of one read of the inotify queue: about
	// 4000 events at once.
	watchReadBuf = 256 << 10
	// watchMoveWait is how long a move out of a directory waits for its
	// other half (a move into a watched directory) before it counts as a
	// delete. The kernel queues both halves of a rename together, so the
	// wait only matters when there is no other half.
	watchMoveWait = 20 * time.Millisecond
	// watchMaxPending bounds the moves waiting for their other half.
	watchMaxPending = 1024
	// watchDetachGrace is how long the watches of a directory that left
	// the tree are kept (and their events ignored) before they are
	// removed: if it comes back meanwhile, they serve again, and no change
	// made in it after its return is lost to the time a new watch takes.
	watchDetachGrace = time.Second
	watchMask        = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MODIFY | unix.IN_ATTRIB | unix.IN_MOVED_FROM |
		unix.IN_MOVED_TO | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_EXCL_UNLINK | unix.IN_ONLYDIR
)

// defaultWatchExcludes are what a watch leaves out unless asked, as
// Cloudflare's does: version control, dependencies and Finder's litter.
var defaultWatchExcludes = []string{".git", "node_modules", ".DS_Store"}

// handleFileWatch streams changes under ?path= as Server-Sent Events, with
// inotify: first "watching" {type, path} once the watch is in place, then
// one "event" (an api.WatchEvent) per change: create, modify (a write or
// a change of attributes: every write is reported, nothing is merged),
// delete, move (with oldPath; a move into or out of the watched tree, or
// between a path that is reported and one that is not, is a create or a
// delete), and overflow (see watchOverflow). Paths are absolute.
//
// ?recursive=true (default false) watches the whole tree, and directories
// created in it later. ?include= and ?exclude= (repeatable) filter by glob
// (see watchFilter). Without ?exclude=, defaultWatchExcludes are left out
// unless ?defaultExcludes=false. The files API's own temporary files are
// never reported: a file written through it is a modify of its name (a
// create if it is new), not a create and a move of a hidden file. A path naming a file watches that file (through its
// directory, so a file replaced by a rename, as files/write does, stays
// watched). Entries created in a new directory before its watch is in
// place are reported as created when the directory is scanned (one
// created during that scan may be reported twice); a directory moved into
// the tree is one create, and what it holds is watched from then on.
//
// A slow client never holds up the reading of the inotify queue: changes
// wait in a queue of watchQueueMax, past which they are dropped and an
// overflow event says so. (A client that reads nothing for the SSE
// writer's timeout loses its stream.)
//
// The stream has no end of its own: it lasts until the client goes away,
// which closes the inotify instance and ends the watch's goroutine. If
// the watched directory itself is deleted or moved, an "error" event
// (FILE_NOT_FOUND) ends it. Events cannot be resumed (their ids are
// sequence numbers of this stream only).
func (svc *Service) handleFileWatch(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p, err := svc.filePath(r, q.Get("path"), q.Get("sessionId"))
	if err != nil {
		core.WriteError(w, err)
		return
	}
	recursive := false
	if v := q.Get("recursive"); v != "" {
		if recursive, err = strconv.ParseBool(v); err != nil {
			core.WriteError(w, fmt.Errorf("%w: recursive=%q is not a boolean", errdefs.ErrInvalidArgument, v))
			return
		}
	}
	exclude := q["exclude"]
	if _, given := q["exclude"]; !given {
		useDefaults := true
		if v := q.Get("defaultExcludes"); v != "" {
			if useDefaults, err = strconv.ParseBool(v); err != nil {
				core.WriteError(w, fmt.Errorf("%w: defaultExcludes=%q is not a boolean", errdefs.ErrInvalidArgument, v))
				return
			}
		}
		if useDefaults {
			exclude = defaultWatchExcludes
		}
	}
	filter, err := newWatchFilter(q["include"], exclude)
	if err != nil {
		core.WriteError(w, err)
		return
	}
	wt, err := newWatcher(p, recursive, filter, svc.log)
	if err != nil {
		core.WriteError(w, err)
		return
	}
	go wt.read()
	defer wt.close()

	sse := core.NewSSE(w)
	defer sse.Close()
	if sse.SendEvents("watching", struct {
		Type string `json:"type"`
		Path string `json:"path"`
	}{"watching", p}) != nil {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-wt.notify:
		}
		evs, end := wt.take()
		if sse.SendEvents("event", evs...) != nil {
			return
		}
		if end != nil {
			_ = sse.Send(api.StreamEvent{Type: api.EventError, Code: errdefs.Code(end), Message: end.Error()})
			return
		}
	}
}

// watcher is one watch: an inotify instance and the goroutine reading it
// (read), which the handler starts and stops (close).
type watcher struct {
	f         *os.File // the inotify instance, non-blocking: Close ends a read
	rc        syscall.RawConn
	root      string // the watched directory, as asked: what changes' paths start with
	real      string // root with its symbolic links resolved: where the tree is walked
	only      string // when watching a file: its name in root
	recursive bool
	filter    watchFilter
	log       *slog.Logger

	// Owned by the reading goroutine (by newWatcher before it starts).
	wds      map[int32]string    // watch descriptor: its directory, relative to root ("" for root)
	detached map[int32]time.Time // watches of directories that left the tree, and since when
	rootWd   int32
	pending  []movedFrom // moves out, oldest first, waiting for their moves in
	full     bool        // a watch could not be added: the limit is reached

	notify   chan struct{} // has a value when there is something to take
	done     chan struct{} // closed when read returns
	queueMax int           // watchQueueMax

	mu      sync.Mutex
	queue   []any // api.WatchEvent values, as core.SSE sends them; guarded by mu
	dropped bool  // changes were dropped after queue; guarded by mu
	end     error // why the watch ended; guarded by mu
}

type movedFrom struct {
	cookie uint32
	rel    string
	isDir  bool
	at     time.Time
	// temp: rel is a temporary file of the files API (tempFile), which
	// replaces a file (replaces) or makes a new one where it moves to.
	temp, replaces bool
}

// newWatcher sets up the watches of path (all of them, when recursive).
func newWatcher(path string, recursive bool, filter watchFilter, log *slog.Logger) (*watcher, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fsError("watch", path, err)
	}
	w := &watcher{root: path, recursive: recursive, filter: filter, log: log, wds: map[int32]string{}, detached: map[int32]time.Time{},
		notify: make(chan struct{}, 1), done: make(chan struct{}), queueMax: watchQueueMax}
	if !fi.IsDir() {
		w.root, w.only, w.recursive = filepath.Dir(path), filepath.Base(path), false
	}
	w.real = w.root
	if real, err := filepath.EvalSymlinks(w.root); err == nil {
		w.real = real
	}
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		if errors.Is(err, unix.EMFILE) {
			return nil, fmt.Errorf("%w: too many watches open (fs.inotify.max_user_instances)", errdefs.ErrResourceExhausted)
		}
		return nil, fmt.Errorf("watch %s: inotify: %w", path, err)
	}
	w.f = os.NewFile(uintptr(fd), "inotify")
	if w.rc, err = w.f.SyscallConn(); err == nil {
		err = w.addTree("", false)
	}
	if err != nil {
		w.f.Close()
		return nil, err
	}
	return w, nil
}

// close stops the watch and waits for its reader.
func (w *watcher) close() {
	w.f.Close()
	<-w.done
}

// take returns the changes queued since the last take, with an overflow
// event last if some were dropped after them, and why the watch ended, if
// it did.
func (w *watcher) take() ([]any, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	q := w.queue
	if w.dropped {
		q = append(q, api.WatchEvent{Type: "event", EventType: watchOverflow, Path: w.root, IsDirectory: true})
	}
	w.queue, w.dropped = nil, false
	return q, w.end
}

func (w *watcher) wake() {
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

func (w *watcher) push(ev api.WatchEvent) {
	w.mu.Lock()
	if len(w.queue) >= w.queueMax {
		w.dropped = true
	} else {
		w.queue = append(w.queue, ev)
	}
	w.mu.Unlock()
}

// finish records why the watch ended, just before read returns.
func (w *watcher) finish(err error) {
	w.mu.Lock()
	w.end = err
	w.mu.Unlock()
}

// read reads the inotify queue until the instance is closed or the
// watched directory is gone.
func (w *watcher) read() {
	defer close(w.done)
	defer w.wake()
	buf := make([]byte, watchReadBuf)
	for {
		n, err := w.f.Read(buf)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded): // moves out, unpaired
		case err != nil:
			if !errors.Is(err, os.ErrClosed) {
				w.finish(fmt.Errorf("watch %s: read inotify: %w", w.root, err))
			}
			return
		case w.parse(buf[:n]):
			w.flushMoves(time.Time{})
			return
		}
		w.flushMoves(time.Now().Add(-watchMoveWait))
		w.removeDetached(time.Now().Add(-watchDetachGrace))
		deadline := time.Time{}
		if len(w.pending) > 0 {
			deadline = w.pending[0].at.Add(watchMoveWait)
		}
		_ = w.f.SetReadDeadline(deadline)
		w.wake()
	}
}
