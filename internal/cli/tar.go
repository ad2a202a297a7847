package cli

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// writeTar writes the tree under the local directory dir to w as a tar
// stream: its directories, regular files and symbolic links, named relative
// to dir ("a/b.txt"), with their permission bits and modification times and
// owned by root, so that they belong to the sandbox's user wherever they are
// extracted. Other files (sockets, devices, pipes) are skipped; so is dir
// itself. The stream is finished (its end-of-archive written) only if every
// file was read: an error leaves it truncated, which no tar will take for a
// complete archive.
func writeTar(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		var link string
		switch t := d.Type(); {
		case t&fs.ModeSymlink != 0:
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		case !t.IsDir() && !t.IsRegular():
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("archive %s: %w", p, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			return copyFileTo(tw, p, hdr.Size)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// copyFileTo copies the file at p, which had size bytes, to w.
func copyFileTo(w io.Writer, p string, size int64) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(w, io.LimitReader(f, size))
	if err == nil && n < size {
		err = fmt.Errorf("file shrank from %d to %d bytes while being read", size, n)
	}
	if err != nil {
		return fmt.Errorf("archive %s: %w", p, err)
	}
	return nil
}

// errUnsafeEntry marks a tar entry refused because it would reach outside
// the directory being extracted to.
var errUnsafeEntry = errors.New("unsafe tar entry")

// extractTar extracts the tar stream r into the local directory dir, which
// must exist. It restores directories, regular files, symbolic links and
// hard links, with their permission bits (not setuid, setgid or sticky)
// and, for files, modification times; other entries (devices, pipes) are
// skipped. Existing files are replaced.
//
// Nothing is written outside dir: every file operation goes through an
// os.Root, and an entry whose name is absolute or has a ".." component, or
// a hard link to such a name, stops the extraction with an error wrapping
// errUnsafeEntry. A symbolic link that points outside dir (an absolute one,
// like a virtualenv's python -> /usr/bin/python3, or one climbing out with
// "..") is not created: it is passed to skipped, with the reason, and the
// extraction goes on. Symbolic links are created last, once every other
// entry is in place, and each is checked then to resolve inside dir (a
// link through another link can climb out where its text alone does not);
// one that does not is removed and skipped too. An error stops the
// extraction, leaving what was extracted before it.
func extractTar(r io.Reader, dir string, skipped func(name, why string)) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	var (
		links []*tar.Header // symbolic links, created last
		dirs  []*tar.Header // directories, their modes set last
	)
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		if hdr.Name, err = entryName(hdr.Name); err != nil {
			return err
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if hdr.Name != "." {
				err = root.MkdirAll(hdr.Name, 0o700)
				dirs = append(dirs, hdr)
			}
		case tar.TypeReg:
			err = extractFile(root, hdr, tr)
		case tar.TypeSymlink:
			if linkInside(hdr) {
				links = append(links, hdr)
			} else {
				skipped(hdr.Name, "symbolic link to "+hdr.Linkname+" points outside "+dir)
			}
		case tar.TypeLink:
			var target string
			if target, err = entryName(hdr.Linkname); err == nil {
				err = replace(root, hdr.Name, func() error { return root.Link(target, hdr.Name) })
			}
		}
		if err != nil {
			return err
		}
	}
	for _, hdr := range links {
		if err := replace(root, hdr.Name, func() error { return root.Symlink(hdr.Linkname, hdr.Name) }); err != nil {
			return err
		}
	}
	for _, hdr := range links {
		// Stat follows the link within the root only: an error other than
		// "not found" (a dangling link is fine) means it leads out.
		if _, err := root.Stat(hdr.Name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			if err := root.Remove(hdr.Name); err != nil {
				return err
			}
			skipped(hdr.Name, "symbolic link to "+hdr.Linkname+" leads outside "+dir+" through other links")
		}
	}
	// Deepest first, so a read-only directory is made so after its content.
	for _, hdr := range slices.Backward(dirs) {
		if err := root.Chmod(hdr.Name, fs.FileMode(hdr.Mode).Perm()); err != nil {
			return err
		}
	}
	return nil
}

// entryName checks the name of a tar entry (or of a hard link's target)
// and returns it cleaned, without a leading "./"; "." is the directory
// extracted to.
func entryName(name string) (string, error) {
	if name == "" || path.IsAbs(name) || strings.HasPrefix(name, `\`) {
		return "", fmt.Errorf("%w: absolute or empty name %q", errUnsafeEntry, name)
	}
	if slices.Contains(strings.Split(name, "/"), "..") {
		return "", fmt.Errorf("%w: name %q has a .. component", errUnsafeEntry, name)
	}
	return path.Clean(name), nil
}

// linkInside reports whether the target of the symbolic link hdr, read as
// text, stays inside the directory extracted to: it is relative and does
// not climb out with "..".
func linkInside(hdr *tar.Header) bool {
	t := hdr.Linkname
	return t != "" && !path.IsAbs(t) && filepath.IsLocal(path.Join(path.Dir(hdr.Name), t))
}

// extractFile writes the regular file hdr, its content read from r.
func extractFile(root *os.Root, hdr *tar.Header, r io.Reader) error {
	return replace(root, hdr.Name, func() error {
		f, err := root.OpenFile(hdr.Name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fs.FileMode(hdr.Mode).Perm())
		if err != nil {
			return err
		}
		_, err = io.Copy(f, r)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil { // exactly the archive's bits, whatever the umask
			err = root.Chmod(hdr.Name, fs.FileMode(hdr.Mode).Perm())
		}
		if err == nil {
			err = root.Chtimes(hdr.Name, hdr.ModTime, hdr.ModTime)
		}
		return err
	})
}

// replace creates name with create, after making its parent directories
// and removing a link (or, for links, a file) already there, so that the
// new entry replaces it rather than writing through it. A directory there
// is left alone: create then fails.
func replace(root *os.Root, name string, create func() error) error {
	if dir := path.Dir(name); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	if fi, err := root.Lstat(name); err == nil && !fi.IsDir() {
		if err := root.Remove(name); err != nil {
			return err
		}
	}
	if err := create(); err != nil {
		return fmt.Errorf("extract %s: %w", name, err)
	}
	return nil
}
