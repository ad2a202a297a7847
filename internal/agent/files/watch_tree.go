package files

// The reading goroutine's side of a watch: inotify events turned into
// changes, and the watches of the tree kept up to date.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

// parse handles the events in b; it returns true when the watch ended.
func (w *watcher) parse(b []byte) bool {
	for len(b) >= unix.SizeofInotifyEvent {
		wd := int32(binary.NativeEndian.Uint32(b[0:]))
		mask := binary.NativeEndian.Uint32(b[4:])
		cookie := binary.NativeEndian.Uint32(b[8:])
		size := int(binary.NativeEndian.Uint32(b[12:]))
		end := unix.SizeofInotifyEvent + size
		if end > len(b) {
			break
		}
		name := strings.TrimRight(string(b[unix.SizeofInotifyEvent:end]), "\x00")
		b = b[end:]
		if w.handle(wd, mask, cookie, name) {
			return true
		}
	}
	return false
}

// handle turns one inotify event into changes; it returns true when the
// watch ended.
func (w *watcher) handle(wd int32, mask, cookie uint32, name string) bool {
	if mask&unix.IN_Q_OVERFLOW != 0 {
		w.flushMoves(time.Time{})
		w.push(api.WatchEvent{Type: "event", EventType: watchOverflow, Path: w.root, IsDirectory: true})
		if w.recursive { // directories created meanwhile may lack a watch
			_ = w.addTree("", false)
		}
		return false
	}
	dir, ok := w.wds[wd]
	if !ok { // gone, or outside the tree
		if mask&unix.IN_IGNORED != 0 {
			delete(w.detached, wd)
		}
		return false
	}
	if wd == w.rootWd && mask&(unix.IN_IGNORED|unix.IN_DELETE_SELF|unix.IN_MOVE_SELF|unix.IN_UNMOUNT) != 0 {
		w.finish(codedErr(api.CodeFileNotFound, errdefs.ErrNotFound, "watch %s: the directory was deleted or moved", w.root))
		return true
	}
	if mask&unix.IN_IGNORED != 0 {
		delete(w.wds, wd)
		return false
	}
	if name == "" { // about a watched directory itself
		return false
	}
	rel := filepath.Join(dir, name)
	// Anything that happens in a directory moved out after the move comes
	// after its move in, if there is one: the directory left the tree.
	for i, p := range w.pending {
		if p.isDir && (dir == p.rel || strings.HasPrefix(dir, p.rel+"/")) {
			w.flushMove(i)
			return false
		}
	}
	isDir := mask&unix.IN_ISDIR != 0
	temp, replaces := tempFile(name)
	from := -1 // the move out whose move in this is
	if mask&unix.IN_MOVED_TO != 0 {
		from = slices.IndexFunc(w.pending, func(p movedFrom) bool { return p.cookie == cookie })
	}
	switch {
	case from >= 0 && w.pending[from].temp:
		// The files API's temporary file takes its name: to the
		// watcher, the file at that name was written (or made).
		p := w.pending[from]
		w.pending = slices.Delete(w.pending, from, from+1)
		if temp {
			break
		}
		kind := watchCreate
		if p.replaces {
			kind = watchModify
		}
		w.emit(kind, rel, isDir)
		if isDir && w.recursive && !w.filter.excluded(rel) {
			_ = w.addTree(rel, false)
		}
	case from >= 0:
		old := w.pending[from].rel
		w.pending = slices.Delete(w.pending, from, from+1)
		w.emitMove(old, rel, isDir)
		if isDir && w.recursive {
			w.moveWatches(old, rel)
		}
	case temp && mask&unix.IN_MOVED_FROM != 0:
		if len(w.pending) >= watchMaxPending {
			w.flushMove(0)
		}
		w.pending = append(w.pending, movedFrom{cookie: cookie, rel: rel, isDir: isDir, at: time.Now(), temp: true, replaces: replaces})
	case temp:
		// The files API's temporary files are not the user's: they
		// are reported only when they take their names (above).
	case mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0:
		// A directory moved in is one create; one created may have
		// entries already, made before its watch is in place.
		w.emit(watchCreate, rel, isDir)
		if isDir && w.recursive && !w.filter.excluded(rel) {
			_ = w.addTree(rel, mask&unix.IN_CREATE != 0)
		}
	case mask&unix.IN_MOVED_FROM != 0:
		if len(w.pending) >= watchMaxPending {
			w.flushMove(0)
		}
		w.pending = append(w.pending, movedFrom{cookie: cookie, rel: rel, isDir: isDir, at: time.Now()})
	case mask&unix.IN_DELETE != 0:
		w.emit(watchDelete, rel, isDir)
	case mask&(unix.IN_MODIFY|unix.IN_ATTRIB) != 0:
		w.emit(watchModify, rel, isDir)
	}
	return false
}

// flushMoves reports the moves out that waited since before (all of them
// for the zero time) as deletes.
func (w *watcher) flushMoves(before time.Time) {
	for len(w.pending) > 0 && (before.IsZero() || !w.pending[0].at.After(before)) {
		w.flushMove(0)
	}
}

// flushMove reports the move out pending[i], whose move in did not come,
// as a delete.
func (w *watcher) flushMove(i int) {
	from := w.pending[i]
	w.pending = slices.Delete(w.pending, i, i+1)
	if from.temp {
		return // a temporary file was never reported
	}
	w.emit(watchDelete, from.rel, from.isDir)
	if from.isDir && w.recursive {
		w.detach(from.rel)
	}
}

// wants reports whether changes to rel are reported.
func (w *watcher) wants(rel string) bool {
	if w.only != "" {
		return rel == w.only
	}
	return w.filter.allows(rel)
}

func (w *watcher) emit(kind, rel string, isDir bool) {
	if w.wants(rel) {
		w.push(api.WatchEvent{Type: "event", EventType: kind, Path: filepath.Join(w.root, rel), IsDirectory: isDir})
	}
}

func (w *watcher) emitMove(from, to string, isDir bool) {
	switch wantFrom, wantTo := w.wants(from), w.wants(to); {
	case wantFrom && wantTo:
		w.push(api.WatchEvent{Type: "event", EventType: watchMove, Path: filepath.Join(w.root, to),
			OldPath: filepath.Join(w.root, from), IsDirectory: isDir})
	case wantTo:
		w.emit(watchCreate, to, isDir)
	case wantFrom:
		w.emit(watchDelete, from, isDir)
	}
}

// addTree watches the directory rel and, when recursive, the directories
// under it that are not excluded. With synth, it reports what it finds
// under rel as created (entries made before the watch was in place).
// Directories that vanish meanwhile are skipped; an error is returned
// only for rel itself.
func (w *watcher) addTree(rel string, synth bool) error {
	top := filepath.Join(w.real, rel)
	return filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == top {
				return fsError("watch", path, err)
			}
			return nil
		}
		r := rel
		if path != top {
			r, _ = filepath.Rel(w.real, path)
			if d.IsDir() && w.filter.excluded(r) {
				return filepath.SkipDir
			}
			if synth {
				w.emit(watchCreate, r, d.IsDir())
			}
		}
		if !d.IsDir() {
			return nil
		}
		wd, err := w.addWatch(path, path != top || rel != "")
		if err != nil {
			if path == top {
				return err
			}
			return filepath.SkipDir
		}
		w.wds[wd] = r
		delete(w.detached, wd) // back in the tree
		if path == top && rel == "" {
			w.rootWd = wd
		}
		if !w.recursive {
			return filepath.SkipDir
		}
		return nil
	})
}

// addWatch adds an inotify watch on the directory path; symbolic links
// are followed only for the watched directory itself.
func (w *watcher) addWatch(path string, noFollow bool) (int32, error) {
	mask := uint32(watchMask)
	if noFollow {
		mask |= unix.IN_DONT_FOLLOW
	}
	var wd int
	var werr error
	if err := w.rc.Control(func(fd uintptr) { wd, werr = unix.InotifyAddWatch(int(fd), path, mask) }); err != nil {
		return 0, err
	}
	switch {
	case errors.Is(werr, unix.ENOSPC):
		if !w.full {
			w.full = true
			w.log.Warn("watch: inotify watch limit reached (fs.inotify.max_user_watches); part of the tree is not watched", "root", w.root)
		}
		return 0, fmt.Errorf("%w: watch %s: the inotify watch limit (fs.inotify.max_user_watches) is reached", errdefs.ErrResourceExhausted, path)
	case werr != nil:
		return 0, fsError("watch", path, werr)
	}
	return int32(wd), nil
}

// moveWatches updates the directories of the watches under a directory
// that moved within the tree (inotify watches follow the inode).
func (w *watcher) moveWatches(from, to string) {
	if w.filter.excluded(to) {
		w.detach(from)
		return
	}
	moved := false
	for wd, d := range w.wds {
		if d == from || strings.HasPrefix(d, from+"/") {
			w.wds[wd] = to + strings.TrimPrefix(d, from)
			moved = true
		}
	}
	if !moved { // it came from an excluded directory
		_ = w.addTree(to, false)
	}
}

// detach stops reporting changes under rel, a directory that left the
// tree (or moved into an excluded one); its watches are removed later
// (removeDetached).
func (w *watcher) detach(rel string) {
	now := time.Now()
	for wd, d := range w.wds {
		if d == rel || strings.HasPrefix(d, rel+"/") {
			delete(w.wds, wd)
			w.detached[wd] = now
		}
	}
}

// removeDetached removes the watches detached before then.
func (w *watcher) removeDetached(before time.Time) {
	for wd, since := range w.detached {
		if since.Before(before) {
			delete(w.detached, wd)
			_ = w.rc.Control(func(fd uintptr) { _, _ = unix.InotifyRmWatch(int(fd), uint32(wd)) })
		}
	}
}
