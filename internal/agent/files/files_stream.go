package files

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agent/core"
	"github.com/sandboxd/sandboxd/internal/chunkio"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

// copyBufSize is the buffer of a streamed upload or download: what one
// transfer holds in memory, whatever the file's size.
const copyBufSize = 1 << 20

// handleFilePut writes the raw request body to ?path= (relative to the
// session's directory: ?sessionId= or X-Session-Id), streamed to disk in
// constant memory and atomically (see writeAtomic); ?mode= sets the mode
// (octal). An upload that breaks off leaves the file as it was.
func (svc *Service) handleFilePut(r *http.Request, _ *core.NoBody) (api.WriteFileResult, error) {
	q := r.URL.Query()
	p, err := svc.filePath(r, q.Get("path"), q.Get("sessionId"))
	if err != nil {
		return api.WriteFileResult{}, err
	}
	return writeFile(p, r.Body, q.Get("mode"))
}

// handleFileGet sends the raw bytes of the regular file ?path=, streamed,
// with Content-Length, Last-Modified, Range and conditional requests as
// http.ServeContent does them, and a Content-Type from the file (see
// fileMimeType; text gets "; charset=utf-8").
func (svc *Service) handleFileGet(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p, err := svc.filePath(r, q.Get("path"), q.Get("sessionId"))
	if err != nil {
		core.WriteError(w, err)
		return
	}
	f, fi, err := openForRead(p)
	if err != nil {
		core.WriteError(w, err)
		return
	}
	defer f.Close()
	head := make([]byte, 512)
	n, err := f.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		core.WriteError(w, fsError("read", p, err))
		return
	}
	sample := n == len(head) // else head is the whole file
	head = head[:n]
	// A character cut at the end of the sample is not a sign of binary.
	text := head
	if sample {
		text = head[:n-core.IncompleteTail(head)]
	}
	binary := contentIsBinary(text)
	ct := fileMimeType(p, head, binary)
	if !binary && strings.HasPrefix(ct, "text/") {
		ct += "; charset=utf-8"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(bigCopyWriter{w}, r, filepath.Base(p), fi.ModTime(), f)
}

// bigCopyWriter gives a response writer a ReadFrom that copies in pieces
// of copyBufSize: http.ServeContent copies a file with io.Copy, whose
// buffer (32 KiB, the server's own, over a Unix socket) would cost two
// system calls per 32 KiB.
type bigCopyWriter struct{ http.ResponseWriter }

func (w bigCopyWriter) ReadFrom(src io.Reader) (int64, error) {
	return io.CopyBuffer(struct{ io.Writer }{w.ResponseWriter}, src, make([]byte, copyBufSize))
}

// Unwrap lets http.ResponseController find the writer underneath.
func (w bigCopyWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writeAtomic writes what src gives to path: into a new temporary file in
// the same directory, synced, then renamed over path, so that path never
// shows a partial file, and a failed write (src breaking off, a full disk)
// leaves it as it was. Concurrent writes to one path each rename a whole
// file; the last rename wins.
//
// A symbolic link at path is followed: the file it points to is replaced,
// and the link stays. A file replaced keeps its mode (unless setMode) and,
// as far as the agent may set it, its owner; a new file gets mode, or 0644,
// and belongs to the agent's user. The parent directory must exist
// (FILE_NOT_FOUND otherwise). A directory at path gives IS_DIRECTORY, any
// other non-regular file (FIFO, device) VALIDATION_FAILED. Writing into
// /proc or /sys cannot work this way (no temporary file there): use exec.
func writeAtomic(path string, src io.Reader, mode fs.FileMode, setMode bool) (int64, error) {
	target, err := followSymlinks(path)
	if err != nil {
		return 0, err
	}
	perm, uid, gid := fs.FileMode(0o644), -1, -1
	fi, err := os.Lstat(target)
	switch {
	case err == nil && fi.IsDir():
		return 0, codedErr(api.CodeIsDirectory, errdefs.ErrInvalidArgument, "write %s: is a directory", path)
	case err == nil && !fi.Mode().IsRegular():
		return 0, fmt.Errorf("%w: write %s: not a regular file (%s)", errdefs.ErrInvalidArgument, path, fileTypeName(fi.Mode()))
	case err == nil:
		perm = fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(st.Uid), int(st.Gid)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return 0, fsError("write", path, err)
	}
	if setMode {
		perm = mode
	}
	dir := filepath.Dir(target)
	tmp, err := os.OpenFile(tempName(dir, filepath.Base(target), fi != nil), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, codedErr(api.CodeFileNotFound, errdefs.ErrNotFound, "write %s: directory %s does not exist", path, dir)
	}
	if err != nil {
		return 0, fsError("write", path, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// Writes of copyBufSize, filled as far as src allows: an upload
	// arrives in pieces of a few KiB; the file gets few big writes.
	rs := &readSource{r: src}
	n, err := chunkio.CopyChunks(tmp, rs, make([]byte, copyBufSize))
	if err != nil {
		if rs.err != nil {
			return 0, fmt.Errorf("%w: write %s: reading the content: %v", errdefs.ErrInvalidArgument, path, rs.err)
		}
		return 0, fsError("write", path, err)
	}
	if uid > 0 || gid > 0 {
		_ = tmp.Chown(uid, gid) // best effort: an owner outside the sandbox's ids stays root
	}
	if err := tmp.Chmod(perm); err != nil { // after Chown, which clears set-id bits
		return 0, fsError("write", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return 0, fsError("write", path, err)
	}
	if err := tmp.Close(); err != nil {
		return 0, fsError("write", path, err)
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		return 0, fsError("write", path, err)
	}
	done = true
	core.SyncDir(dir)
	return n, nil
}

// readSource remembers an error of the reader, to tell it from the
// writer's.
type readSource struct {
	r   io.Reader
	err error
}

func (s *readSource) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// tempName returns a random hidden name for a temporary copy of name in
// dir: ".name.sbx-RANDOM.tmp" when it is to replace a file of that name,
// ".name.sbx-RANDOM.new.tmp" when there is none (file watches tell a
// modify from a create by it: see tempFile), created with O_EXCL. With
// 128 random bits a collision is beyond reach, so nothing retries one.
func tempName(dir, name string, replaces bool) string {
	if len(name) > 200 { // leave room for the rest within NAME_MAX
		name = name[:200]
	}
	suffix := ".new.tmp"
	if replaces {
		suffix = ".tmp"
	}
	return filepath.Join(dir, "."+name+".sbx-"+rand.Text()+suffix)
}

// tempNamePattern matches the names tempName makes.
var tempNamePattern = regexp.MustCompile(`(?s)^\..*\.sbx-[A-Z2-7]{26}(\.new)?\.tmp$`)

// tempFile tells whether name is one tempName made and, if so, whether the
// file it becomes replaces one.
func tempFile(name string) (temp, replaces bool) {
	if !tempNamePattern.MatchString(name) {
		return false, false
	}
	return true, !strings.HasSuffix(name, ".new.tmp")
}

// followSymlinks returns the file that path names once the symbolic links
// at its end are followed (the directories on the way are resolved as
// well), or path itself if it names no link. A dangling link gives where
// it points.
func followSymlinks(path string) (string, error) {
	p := path
	for range 40 {
		if d, err := filepath.EvalSymlinks(filepath.Dir(p)); err == nil {
			p = filepath.Join(d, filepath.Base(p))
		}
		fi, err := os.Lstat(p)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			return p, nil
		}
		link, err := os.Readlink(p)
		if err != nil {
			return p, nil
		}
		if !filepath.IsAbs(link) {
			link = filepath.Join(filepath.Dir(p), link)
		}
		p = filepath.Clean(link)
	}
	return "", fmt.Errorf("%w: %s: too many levels of symbolic links", errdefs.ErrInvalidArgument, path)
}

// fileMimeType guesses a file's media type (without parameters) from its
// name and the start of its content.
//
// The content decides whether it is text (binary says it is not). For
// text, a textual type known for the name's extension wins (.json
// application/json, .py text/x-python, .md text/markdown...), else the
// sniffed type if textual (http.DetectContentType: text/html...), else
// text/plain. For binary content the sniffed type wins (image/png...); the
// extension is used only when sniffing gives application/octet-stream.
func fileMimeType(name string, head []byte, binary bool) string {
	sniffed, _, err := mime.ParseMediaType(http.DetectContentType(head))
	if err != nil {
		sniffed = "application/octet-stream"
	}
	ext := strings.ToLower(filepath.Ext(name))
	byExt := textTypes[ext]
	if byExt == "" && ext != "" {
		byExt, _, _ = mime.ParseMediaType(mime.TypeByExtension(ext))
	}
	if binary {
		if sniffed == "application/octet-stream" && byExt != "" && !isTextualType(byExt) {
			return byExt
		}
		return sniffed
	}
	switch {
	case byExt != "" && isTextualType(byExt):
		return byExt
	case isTextualType(sniffed):
		return sniffed
	}
	return "text/plain"
}

// isTextualType reports whether a media type names text.
func isTextualType(t string) bool {
	switch {
	case strings.HasPrefix(t, "text/"), strings.HasSuffix(t, "+json"), strings.HasSuffix(t, "+xml"):
		return true
	}
	switch t {
	case "application/json", "application/javascript", "application/xml", "application/yaml", "application/toml",
		"application/sql", "application/x-sh", "application/x-httpd-php", "application/graphql", "application/jsonl",
		"application/x-ndjson":
		return true
	}
	return false
}

// textTypes are the types of common text files, so that a guess does not
// depend on the sandbox image's /etc/mime.types.
var textTypes = map[string]string{
	".txt": "text/plain", ".log": "text/plain", ".ini": "text/plain", ".cfg": "text/plain", ".conf": "text/plain",
	".md": "text/markdown", ".markdown": "text/markdown", ".rst": "text/x-rst",
	".json": "application/json", ".jsonl": "application/jsonl", ".ipynb": "application/x-ipynb+json",
	".yaml": "application/yaml", ".yml": "application/yaml", ".toml": "application/toml",
	".xml": "application/xml", ".svg": "image/svg+xml", ".html": "text/html", ".htm": "text/html", ".css": "text/css",
	".csv": "text/csv", ".tsv": "text/tab-separated-values", ".sql": "application/sql",
	".js": "text/javascript", ".mjs": "text/javascript", ".cjs": "text/javascript", ".jsx": "text/jsx",
	".ts": "text/typescript", ".tsx": "text/tsx", ".py": "text/x-python", ".pyi": "text/x-python",
	".go": "text/x-go", ".rs": "text/x-rust", ".c": "text/x-c", ".h": "text/x-c", ".cc": "text/x-c++",
	".cpp": "text/x-c++", ".hpp": "text/x-c++", ".java": "text/x-java", ".kt": "text/x-kotlin", ".rb": "text/x-ruby",
	".php": "application/x-httpd-php", ".sh": "text/x-shellscript", ".bash": "text/x-shellscript",
	".zsh": "text/x-shellscript", ".r": "text/x-r", ".swift": "text/x-swift", ".lua": "text/x-lua",
}
