package files

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agent/core"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

// handleFileRename renames a file or directory within one filesystem,
// atomically; across filesystems it fails (VALIDATION_FAILED): files/move
// copies. See renamePath for what the destination may be.
func (svc *Service) handleFileRename(r *http.Request, req *api.RenameRequest) (api.PathResult, error) {
	return svc.renameCall(r, req.OldPath, req.NewPath, req.SessionID, false)
}

// handleFileMove moves a file or directory, across filesystems too: there
// it copies (contents, modes, owners, times, symbolic links as links) into
// a temporary name beside the destination, renames that into place, then
// removes the source. See renamePath for what the destination may be.
func (svc *Service) handleFileMove(r *http.Request, req *api.MoveRequest) (api.PathResult, error) {
	return svc.renameCall(r, req.SourcePath, req.DestinationPath, req.SessionID, true)
}

func (svc *Service) renameCall(r *http.Request, from, to, sid string, copyAcross bool) (api.PathResult, error) {
	src, err := svc.filePath(r, from, sid)
	if err != nil {
		return api.PathResult{}, err
	}
	dst, err := svc.filePath(r, to, sid)
	if err != nil {
		return api.PathResult{}, err
	}
	if err := renamePath(src, dst, copyAcross); err != nil {
		return api.PathResult{}, err
	}
	// Durable once acknowledged: both directories' entries.
	core.SyncDir(filepath.Dir(dst))
	if filepath.Dir(src) != filepath.Dir(dst) {
		core.SyncDir(filepath.Dir(src))
	}
	return api.PathResult{Path: dst}, nil
}

// renamePath gives src (a symbolic link is moved as the link) the path
// dst: the full new path, never a directory to move into. The parent of
// dst must exist (FILE_NOT_FOUND). A file at dst is replaced by a file
// (like mv); a directory at dst, or a file at dst when src is a directory,
// gives FILE_EXISTS. A directory cannot move into itself
// (VALIDATION_FAILED). src == dst does nothing.
func renamePath(src, dst string, copyAcross bool) error {
	sfi, err := os.Lstat(src)
	if err != nil {
		return fsError("rename", src, err)
	}
	if src == dst {
		return nil
	}
	if sfi.IsDir() && strings.HasPrefix(dst, src+"/") {
		return fmt.Errorf("%w: cannot move the directory %s into itself (%s)", errdefs.ErrInvalidArgument, src, dst)
	}
	replace := false
	dfi, err := os.Lstat(dst)
	switch {
	case err == nil && dfi.IsDir():
		return codedErr(api.CodeFileExists, errdefs.ErrConflict, "rename %s to %s: the destination is an existing directory", src, dst)
	case err == nil && sfi.IsDir():
		return codedErr(api.CodeFileExists, errdefs.ErrConflict, "rename %s to %s: the destination exists (a directory does not replace a file)", src, dst)
	case err == nil:
		replace = true
	case !errors.Is(err, fs.ErrNotExist):
		return fsError("rename", dst, err)
	}
	err = renameFile(src, dst, replace)
	if !errors.Is(err, unix.EXDEV) {
		if err != nil {
			return fsError("rename "+src+" to", dst, err)
		}
		return nil
	}
	if !copyAcross {
		return fmt.Errorf("%w: %s and %s are on different filesystems: rename cannot, files/move can",
			errdefs.ErrInvalidArgument, src, dst)
	}
	return moveAcross(src, dst, sfi, replace)
}

// renameFile renames src to dst, replacing a file at dst only if replace
// (otherwise something that appeared there since gives EEXIST).
func renameFile(src, dst string, replace bool) error {
	if replace {
		return os.Rename(src, dst)
	}
	err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) { // a filesystem without RENAME_NOREPLACE
		return os.Rename(src, dst)
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: src, New: dst, Err: err}
	}
	return nil
}

// moveAcross moves src to dst on another filesystem: a copy under a
// temporary name beside dst, renamed into place, then src removed. If the
// copy fails, nothing changes.
func moveAcross(src, dst string, sfi fs.FileInfo, replace bool) error {
	_, err := os.Lstat(dst)
	tmp := tempName(filepath.Dir(dst), filepath.Base(dst), replace && err == nil) // copyTree creates it exclusively
	if err := copyTree(src, tmp, sfi); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := renameFile(tmp, dst, replace); err != nil {
		os.RemoveAll(tmp)
		return fsError("move "+src+" to", dst, err)
	}
	if err := os.RemoveAll(src); err != nil {
		return fsError("move: copied to "+dst+", but could not remove", src, err)
	}
	return nil
}

// copyTree copies src (described by fi, from lstat) to the new path dst.
func copyTree(src, dst string, fi fs.FileInfo) error {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		link, err := os.Readlink(src)
		if err != nil {
			return fsError("move", src, err)
		}
		if err := os.Symlink(link, dst); err != nil {
			return fsError("move to", dst, err)
		}
	case fi.IsDir():
		if err := os.Mkdir(dst, 0o700); err != nil {
			return fsError("move to", dst, err)
		}
		entries, err := os.ReadDir(src)
		if err != nil {
			return fsError("move", src, err)
		}
		for _, e := range entries {
			info, err := e.Info()
			if err != nil {
				return fsError("move", filepath.Join(src, e.Name()), err)
			}
			if err := copyTree(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()), info); err != nil {
				return err
			}
		}
	case fi.Mode().IsRegular():
		if err := copyFileData(src, dst); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: cannot move %s to another filesystem: it is a %s", errdefs.ErrInvalidArgument, src, fileTypeName(fi.Mode()))
	}
	copyAttrs(dst, fi)
	return nil
}

func copyFileData(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fsError("move", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fsError("move to", dst, err)
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fsError("move to", dst, err)
	}
	return nil
}

// copyAttrs gives dst the owner, mode and times of fi, as far as it may.
func copyAttrs(dst string, fi fs.FileInfo) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if ok {
		_ = os.Lchown(dst, int(st.Uid), int(st.Gid))
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return
	}
	_ = os.Chmod(dst, fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
	atime := fi.ModTime()
	if ok {
		atime = time.Unix(st.Atim.Unix())
	}
	_ = os.Chtimes(dst, atime, fi.ModTime())
}
