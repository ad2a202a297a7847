package files

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

// maxListEntries caps one listing; past it the call fails with
// RESOURCE_EXHAUSTED rather than answer with a partial list.
const maxListEntries = 100_000

// errListTooLong stops a walk at maxListEntries.
var errListTooLong = errors.New("listing too long")

// handleFileList lists a directory (a symbolic link to one is followed):
// its entries, or with recursive its whole tree (links inside are listed,
// not followed), in lexical order of relativePath, without names starting
// with a dot (nor what is under such a directory) unless includeHidden.
// Entries that vanish or cannot be read while listing are left out. A
// non-directory gives NOT_DIRECTORY.
func (svc *Service) handleFileList(req *api.PathRequest, p string) (api.FileList, error) {
	files, err := listFiles(p, req.Recursive, req.IncludeHidden, maxListEntries)
	if err != nil {
		return api.FileList{}, err
	}
	return api.FileList{Files: files, Count: len(files)}, nil
}

// listFiles lists dir; more than limit entries is RESOURCE_EXHAUSTED.
func listFiles(dir string, recursive, hidden bool, limit int) ([]api.FileInfo, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fsError("list", dir, err)
	}
	if !fi.IsDir() {
		return nil, codedErr(api.CodeNotDirectory, errdefs.ErrInvalidArgument, "list %s: not a directory", dir)
	}
	files := []api.FileInfo{}
	root := dir
	if lfi, err := os.Lstat(dir); err == nil && lfi.Mode()&fs.ModeSymlink != 0 {
		root = dir + "/" // make WalkDir follow the link to the directory
	}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if path == root {
			return err
		}
		if err != nil {
			return nil // gone, or unreadable: leave it out
		}
		var next error // SkipDir not to go into d (only ever for a directory)
		if d.IsDir() && !recursive {
			next = filepath.SkipDir
		}
		if !hidden && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return next
		}
		if len(files) >= limit {
			return errListTooLong
		}
		rel, _ := filepath.Rel(dir, path)
		files = append(files, fileInfoOf(path, rel, info))
		return next
	})
	if errors.Is(err, errListTooLong) {
		return nil, listTooLong(dir, limit)
	}
	if err != nil {
		return nil, fsError("list", dir, err)
	}
	return files, nil
}

func listTooLong(dir string, limit int) error {
	return &errdefs.CodedError{Code: api.CodeResourceExhausted, Kind: errdefs.ErrResourceExhausted,
		Message: fmt.Sprintf("list %s: more than %d entries; list a subdirectory, or without recursive", dir, limit),
		Details: map[string]any{"limit": limit}}
}

// fileInfoOf describes a file as listed; info is from lstat. Permissions
// are what the agent's user (the user commands run as) may do, asked of
// the kernel (for a link: of what it points to).
func fileInfoOf(path, rel string, info fs.FileInfo) api.FileInfo {
	mode := uint32(info.Mode().Perm())
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		mode = st.Mode & 0o7777
	}
	return api.FileInfo{
		Name:         info.Name(),
		AbsolutePath: path,
		RelativePath: rel,
		Type:         fileTypeName(info.Mode()),
		Size:         info.Size(),
		ModifiedAt:   info.ModTime().UTC(),
		Mode:         fmt.Sprintf("%04o", mode),
		Permissions: api.Permissions{
			Readable:   unix.Access(path, unix.R_OK) == nil,
			Writable:   unix.Access(path, unix.W_OK) == nil,
			Executable: unix.Access(path, unix.X_OK) == nil,
		},
	}
}
