// Package files is the agent's calls on the sandbox's filesystem: JSON
// reads and writes, raw content streams (files_stream.go), listing
// (files_list.go), rename and move (files_move.go), watches (watch*.go)
// and git checkout (git.go); files.go holds the routes, path resolution,
// the error mapping and the JSON calls.
//
// The agent's / is the sandbox's root, so paths mean what they mean to a
// command in the sandbox, and stay within it: ".." is resolved lexically
// first (as a shell's cd does: "link/../f" is "f" beside link), then
// symbolic links as the kernel resolves them. Everything is done as the
// agent's user (root in the sandbox), the user commands run as.
package files

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agent/core"
	"github.com/sandboxd/sandboxd/internal/agent/session"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

// Service serves the file calls.
type Service struct {
	reaper   *core.Reaper
	sessions *session.Registry // relative paths resolve against a session's directory
	workdir  string            // where a checkout goes by default
	log      *slog.Logger
}

// New returns the file calls' service.
func New(reaper *core.Reaper, sessions *session.Registry, workdir string, log *slog.Logger) *Service {
	return &Service{reaper: reaper, sessions: sessions, workdir: workdir, log: log}
}

// Limits of the file calls.
const (
	// maxJSONFile is the most file content that files/read and files/write
	// carry in JSON; larger files go through /v1/files/content.
	maxJSONFile = 32 << 20
	// maxPathLen is the longest path accepted (PATH_MAX).
	maxPathLen = 4096
)

// fileEncodingUTF8 names content sent as it is, in JSON strings.
const fileEncodingUTF8 = "utf-8"

// Routes adds the file, watch and git calls. Paths are in the JSON
// body, or in ?path= for content and watch; the session whose directory
// relative paths resolve against is sessionId (body or query), else the
// X-Session-Id header, else the default session.
func (svc *Service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/files/write", svc.handleFileWrite)
	mux.HandleFunc("POST /v1/files/read", core.JSON(http.StatusOK, svc.handleFileRead))
	mux.HandleFunc("PUT /v1/files/content", core.JSON(http.StatusOK, svc.handleFilePut))
	mux.HandleFunc("GET /v1/files/content", svc.handleFileGet)
	mux.HandleFunc("POST /v1/files/mkdir", pathCall(svc, svc.handleFileMkdir))
	mux.HandleFunc("POST /v1/files/delete", pathCall(svc, svc.handleFileDelete))
	mux.HandleFunc("POST /v1/files/rename", core.JSON(http.StatusOK, svc.handleFileRename))
	mux.HandleFunc("POST /v1/files/move", core.JSON(http.StatusOK, svc.handleFileMove))
	mux.HandleFunc("POST /v1/files/list", pathCall(svc, svc.handleFileList))
	mux.HandleFunc("POST /v1/files/exists", pathCall(svc, svc.handleFileExists))
	mux.HandleFunc("GET /v1/files/watch", svc.handleFileWatch)
	mux.HandleFunc("POST /v1/git/checkout", core.JSON(http.StatusOK, svc.handleGitCheckout))
}

// pathCall adapts h, a call on a path, to core.JSON: it resolves the
// request's path (see filePath) and hands it to h with the request: the
// shared start of mkdir, delete, list and exists.
func pathCall[Resp any](svc *Service, h func(req *api.PathRequest, p string) (Resp, error)) http.HandlerFunc {
	return core.JSON(http.StatusOK, func(r *http.Request, req *api.PathRequest) (Resp, error) {
		p, err := svc.filePath(r, req.Path, req.SessionID)
		if err != nil {
			var zero Resp
			return zero, err
		}
		return h(req, p)
	})
}

// filePath checks a path given by a caller and makes it absolute: a
// relative path is joined to the current directory of the session sid
// (else the one the X-Session-Id header names, else the default session).
// The result is cleaned lexically ("a/../b" is "b"); symbolic links are
// left to the kernel.
func (svc *Service) filePath(r *http.Request, p, sid string) (string, error) {
	s, err := svc.sessions.ForRequest(r, sid)
	if err != nil {
		return "", err
	}
	return sessionPath(s, p)
}

// sessionPath is filePath with the session found.
func sessionPath(s *session.Session, p string) (string, error) {
	switch {
	case p == "":
		return "", fmt.Errorf("%w: path is empty", errdefs.ErrInvalidArgument)
	case len(p) > maxPathLen:
		return "", fmt.Errorf("%w: path is %d bytes long, the limit is %d", errdefs.ErrInvalidArgument, len(p), maxPathLen)
	case strings.IndexByte(p, 0) >= 0:
		return "", fmt.Errorf("%w: path holds a NUL byte", errdefs.ErrInvalidArgument)
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(s.Info().Cwd, p)
	}
	return filepath.Clean(p), nil
}

// codedErr returns an error with a precise wire code.
func codedErr(code string, kind error, format string, args ...any) error {
	return &errdefs.CodedError{Code: code, Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// fsError turns an error of a filesystem call on path into the API's
// codes: FILE_NOT_FOUND, NOT_DIRECTORY, IS_DIRECTORY, FILE_EXISTS,
// PERMISSION_DENIED, VALIDATION_FAILED, RESOURCE_EXHAUSTED (a full disk),
// else INTERNAL_ERROR.
func fsError(op, path string, err error) error {
	var ce *errdefs.CodedError
	if errors.As(err, &ce) {
		return err
	}
	reason := err
	var pe *fs.PathError
	var le *os.LinkError
	if errors.As(err, &pe) {
		reason = pe.Err
	} else if errors.As(err, &le) {
		reason = le.Err
	}
	msg := fmt.Sprintf("%s %s: %v", op, path, reason)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return codedErr(api.CodeFileNotFound, errdefs.ErrNotFound, "%s", msg)
	case errors.Is(err, unix.ENOTDIR):
		return codedErr(api.CodeNotDirectory, errdefs.ErrInvalidArgument, "%s", msg)
	case errors.Is(err, unix.EISDIR):
		return codedErr(api.CodeIsDirectory, errdefs.ErrInvalidArgument, "%s", msg)
	case errors.Is(err, fs.ErrExist), errors.Is(err, unix.ENOTEMPTY):
		return codedErr(api.CodeFileExists, errdefs.ErrConflict, "%s", msg)
	case errors.Is(err, fs.ErrPermission), errors.Is(err, unix.EROFS), errors.Is(err, unix.ETXTBSY):
		return codedErr(api.CodePermissionDenied, nil, "%s", msg)
	case errors.Is(err, unix.ENAMETOOLONG), errors.Is(err, unix.ELOOP), errors.Is(err, unix.EINVAL):
		return codedErr(api.CodeValidationFailed, errdefs.ErrInvalidArgument, "%s", msg)
	case errors.Is(err, unix.ENOSPC), errors.Is(err, unix.EDQUOT):
		return codedErr(api.CodeResourceExhausted, errdefs.ErrResourceExhausted, "%s", msg)
	}
	return fmt.Errorf("%s: %w", msg, err)
}

// tooLargeForJSON is the answer to a JSON file call past maxJSONFile.
func tooLargeForJSON(what string) error {
	return &errdefs.CodedError{Code: api.CodeFileTooLarge, Kind: errdefs.ErrPayloadTooLarge,
		Message: fmt.Sprintf("%s is larger than the %d MiB that files/read and files/write carry in JSON; "+
			"stream it with GET or PUT /v1/files/content?path=...", what, maxJSONFile>>20),
		Details: map[string]any{"limit": maxJSONFile}}
}

// parseFileMode parses an octal mode ("0644", "755", "4755"). It returns
// false for "", which leaves the mode to writeAtomic.
func parseFileMode(s string) (os.FileMode, bool, error) {
	if s == "" {
		return 0, false, nil
	}
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 0o7777 {
		return 0, false, fmt.Errorf("%w: mode %q is not an octal mode from 0000 to 7777", errdefs.ErrInvalidArgument, s)
	}
	m := os.FileMode(n & 0o777)
	for _, b := range []struct {
		bit  uint64
		mode os.FileMode
	}{{0o4000, os.ModeSetuid}, {0o2000, os.ModeSetgid}, {0o1000, os.ModeSticky}} {
		if n&b.bit != 0 {
			m |= b.mode
		}
	}
	return m, true, nil
}

// handleFileWrite writes a file from JSON content (utf-8 or base64), at
// most maxJSONFile bytes, atomically: see writeAtomic.
func (svc *Service) handleFileWrite(w http.ResponseWriter, r *http.Request) {
	var req api.WriteFileRequest
	if err := core.DecodeBody(w, r, &req); err != nil {
		if errors.Is(err, errdefs.ErrPayloadTooLarge) {
			err = tooLargeForJSON("the request")
		}
		core.WriteError(w, err)
		return
	}
	core.JSON(http.StatusOK, func(r *http.Request, _ *core.NoBody) (api.WriteFileResult, error) {
		p, err := svc.filePath(r, req.Path, req.SessionID)
		if err != nil {
			return api.WriteFileResult{}, err
		}
		var data []byte
		switch strings.ToLower(req.Encoding) {
		case "", fileEncodingUTF8, "utf8":
			data = []byte(req.Content)
		case api.EncodingBase64:
			if data, err = base64.StdEncoding.DecodeString(req.Content); err != nil {
				return api.WriteFileResult{}, fmt.Errorf("%w: content is not valid base64: %v", errdefs.ErrInvalidArgument, err)
			}
		default:
			return api.WriteFileResult{}, fmt.Errorf("%w: encoding %q: use %q or %q", errdefs.ErrInvalidArgument, req.Encoding, fileEncodingUTF8, api.EncodingBase64)
		}
		if len(data) > maxJSONFile {
			return api.WriteFileResult{}, tooLargeForJSON("the content")
		}
		return writeFile(p, bytes.NewReader(data), req.Mode)
	})(w, r)
}

// writeFile writes what src gives to p atomically (see writeAtomic), with
// mode, in octal, if not "".
func writeFile(p string, src io.Reader, mode string) (api.WriteFileResult, error) {
	m, setMode, err := parseFileMode(mode)
	if err != nil {
		return api.WriteFileResult{}, err
	}
	n, err := writeAtomic(p, src, m, setMode)
	if err != nil {
		return api.WriteFileResult{}, err
	}
	return api.WriteFileResult{Path: p, Size: n}, nil
}

// handleFileRead reads a file of at most maxJSONFile bytes into JSON.
//
// Encoding: by default text (valid UTF-8 without NUL) travels as utf-8 and
// anything else as base64. "base64" always gives base64. "utf-8" gives the
// content as it is if it is valid UTF-8 (NUL bytes included: JSON carries
// them), and refuses, with 400 VALIDATION_FAILED, content that is not:
// converting it would lose bytes.
func (svc *Service) handleFileRead(r *http.Request, req *api.ReadFileRequest) (api.ReadFileResult, error) {
	enc := strings.ToLower(req.Encoding)
	switch enc {
	case "", api.EncodingBase64:
	case fileEncodingUTF8, "utf8":
		enc = fileEncodingUTF8
	default:
		return api.ReadFileResult{}, fmt.Errorf("%w: encoding %q: use %q or %q", errdefs.ErrInvalidArgument, req.Encoding, fileEncodingUTF8, api.EncodingBase64)
	}
	p, err := svc.filePath(r, req.Path, req.SessionID)
	if err != nil {
		return api.ReadFileResult{}, err
	}
	f, fi, err := openForRead(p)
	if err != nil {
		return api.ReadFileResult{}, err
	}
	defer f.Close()
	if fi.Size() > maxJSONFile {
		return api.ReadFileResult{}, tooLargeForJSON(fmt.Sprintf("%s (%d bytes)", p, fi.Size()))
	}
	// Read what is there, not what stat said: /proc files say 0.
	var buf bytes.Buffer
	buf.Grow(int(fi.Size()) + 1)
	if _, err := buf.ReadFrom(io.LimitReader(f, maxJSONFile+1)); err != nil {
		return api.ReadFileResult{}, fsError("read", p, err)
	}
	data := buf.Bytes()
	if len(data) > maxJSONFile {
		return api.ReadFileResult{}, tooLargeForJSON(p)
	}
	binary := contentIsBinary(data)
	res := api.ReadFileResult{Path: p, IsBinary: binary, MimeType: fileMimeType(p, data, binary), Size: int64(len(data))}
	switch {
	case enc == api.EncodingBase64 || (enc == "" && binary):
		res.Content, res.Encoding = base64.StdEncoding.EncodeToString(data), api.EncodingBase64
	case !utf8.Valid(data):
		return api.ReadFileResult{}, fmt.Errorf("%w: %s is not valid UTF-8; read it with encoding %q (or GET /v1/files/content)",
			errdefs.ErrInvalidArgument, p, api.EncodingBase64)
	default:
		res.Content, res.Encoding = string(data), fileEncodingUTF8
	}
	return res, nil
}

// contentIsBinary reports whether content is not text: not valid UTF-8, or with
// NUL bytes.
func contentIsBinary(b []byte) bool {
	return !utf8.Valid(b) || bytes.IndexByte(b, 0) >= 0
}

// openForRead opens a regular file for reading. Directories give
// IS_DIRECTORY; FIFOs, sockets and devices VALIDATION_FAILED (a FIFO would
// block, a device never end); the agent's own /proc files
// PERMISSION_DENIED.
func openForRead(p string) (*os.File, fs.FileInfo, error) {
	// O_NONBLOCK: opening a FIFO must not wait for a writer.
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, fsError("open", p, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fsError("stat", p, err)
	}
	switch {
	case fi.IsDir():
		err = codedErr(api.CodeIsDirectory, errdefs.ErrInvalidArgument, "%s is a directory", p)
	case !fi.Mode().IsRegular():
		err = fmt.Errorf("%w: %s is not a regular file (%s)", errdefs.ErrInvalidArgument, p, fileTypeName(fi.Mode()))
	case isAgentProcFile(f):
		err = codedErr(api.CodePermissionDenied, nil, "%s belongs to the sandbox's agent process", p)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// isAgentProcFile reports whether f is a /proc file of the agent's own
// process (or of one of its threads): the agent is not dumpable, so that
// nothing in the sandbox reads its memory, and the file calls must not
// open that door either.
func isAgentProcFile(f *os.File) bool {
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil || st.Type != unix.PROC_SUPER_MAGIC {
		return false
	}
	target, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if err != nil {
		return true // cannot tell: refuse
	}
	for part := range strings.SplitSeq(target, "/") {
		if tid, err := strconv.Atoi(part); err == nil {
			// The process's own threads, the main one included, are in
			// /proc/self/task.
			_, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", tid))
			return err == nil
		}
	}
	return false // a /proc file of no process, like /proc/cpuinfo
}

// handleFileMkdir creates a directory (0755 less the umask). Recursive
// creates missing parents and succeeds on an existing directory; without
// it an existing path gives FILE_EXISTS and a missing parent
// FILE_NOT_FOUND. Either way a non-directory at the path is FILE_EXISTS.
func (svc *Service) handleFileMkdir(req *api.PathRequest, p string) (api.PathResult, error) {
	var err error
	if req.Recursive {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return api.PathResult{}, codedErr(api.CodeFileExists, errdefs.ErrConflict, "mkdir %s: exists and is not a directory", p)
		}
		err = os.MkdirAll(p, 0o755)
	} else {
		err = os.Mkdir(p, 0o755)
	}
	if err != nil {
		return api.PathResult{}, fsError("mkdir", p, err)
	}
	core.SyncDir(filepath.Dir(p)) // durable once acknowledged
	return api.PathResult{Path: p}, nil
}

// handleFileDelete deletes a file (or a symbolic link: the link, not its
// target). A directory gives IS_DIRECTORY: this call never removes a tree.
func (svc *Service) handleFileDelete(req *api.PathRequest, p string) (api.PathResult, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return api.PathResult{}, fsError("delete", p, err)
	}
	if fi.IsDir() {
		return api.PathResult{}, codedErr(api.CodeIsDirectory, errdefs.ErrInvalidArgument,
			"delete %s: is a directory; files/delete removes files only (remove a tree with exec rm -r)", p)
	}
	if err := os.Remove(p); err != nil {
		return api.PathResult{}, fsError("delete", p, err)
	}
	core.SyncDir(filepath.Dir(p)) // durable once acknowledged
	return api.PathResult{Path: p}, nil
}

// handleFileExists reports whether anything is at the path: a file, a
// directory, or a symbolic link (even a dangling one). A path through a
// non-directory does not exist.
func (svc *Service) handleFileExists(req *api.PathRequest, p string) (api.ExistsResult, error) {
	_, err := os.Lstat(p)
	switch {
	case err == nil:
		return api.ExistsResult{Exists: true}, nil
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, unix.ENOTDIR):
		return api.ExistsResult{Exists: false}, nil
	default:
		return api.ExistsResult{}, fsError("exists", p, err)
	}
}

// fileTypeName names the type of a file as FileInfo does.
func fileTypeName(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m.IsDir():
		return "directory"
	case m.IsRegular():
		return "file"
	}
	return "other"
}
