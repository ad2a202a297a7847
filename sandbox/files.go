package sandbox

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"unicode/utf8"

	"github.com/sandboxd/sandboxd/api"
)

// Encodings of file content in [Sandbox.WriteFile] and [Sandbox.ReadFile].
const (
	EncodingUTF8 = "utf-8"
	// EncodingBase64 is api.EncodingBase64.
	EncodingBase64 = api.EncodingBase64
)

// WriteOptions adjust [Sandbox.WriteFile] and [Sandbox.WriteFileStream].
// The zero value writes with the daemon's default permissions.
type WriteOptions struct {
	// Mode sets the file's permission bits (Perm, plus os.ModeSetuid,
	// os.ModeSetgid and os.ModeSticky). Zero keeps those of the file being
	// replaced, or gives a new file 0644; a file with no permissions at all
	// cannot be asked for here (chmod it with Exec).
	Mode os.FileMode
	// Encoding says what data is, as Cloudflare's writeFile does:
	// EncodingBase64, base64 text the daemon decodes into the bytes it
	// writes (ErrValidation if it is not base64); EncodingUTF8 or empty,
	// the bytes themselves. Only [Sandbox.WriteFile] takes it.
	Encoding string
}

// ReadOptions adjust [Sandbox.ReadFile].
type ReadOptions struct {
	// Encoding asks for the content as EncodingUTF8 or EncodingBase64, as
	// Cloudflare's readFile does: [File.Content] then holds it so (base64
	// text for EncodingBase64); empty lets the daemon choose by the
	// content. [File.Data] always holds the file's bytes.
	Encoding string
}

// ListFilesOptions adjust [Sandbox.ListFiles].
type ListFilesOptions struct {
	// Recursive lists the whole tree under the directory, not just its
	// entries.
	Recursive bool
	// IncludeHidden lists entries whose names start with a dot too.
	IncludeHidden bool
}

// File is a file read by [Sandbox.ReadFile].
type File struct {
	// Path is the file's absolute path in the sandbox.
	Path string
	// Data is the file's content, byte for byte, however it travelled.
	Data []byte
	// Content is the content as it travelled, in Encoding: the text of a
	// UTF-8 file, base64 text otherwise or when asked for
	// (ReadOptions.Encoding), as Cloudflare's readFile returns it.
	Content  string
	Encoding string
	// MimeType is the daemon's guess of the content's type, such as
	// "text/plain" or "image/png".
	MimeType string
	// IsBinary is set when the content is not text.
	IsBinary bool
	// Size is the file's size in bytes.
	Size int64
}

// Text returns the file's content as a string.
func (f *File) Text() string { return string(f.Data) }

// WriteFile writes data to the file at path in the sandbox, replacing it if
// it exists, in one JSON request: data that is valid UTF-8 is sent as it is,
// anything else base64-encoded. A relative path resolves against the
// session's current directory. The parent directory must exist
// (ErrFileNotFound otherwise); path naming a directory gives ErrIsDirectory.
// Data larger than the daemon's JSON cap (32 MiB by default, less after
// base64) gives ErrPayloadTooLarge: use [Sandbox.WriteFileStream] for large
// files. It is not retried. opts may be nil.
func (t *target) WriteFile(ctx context.Context, path string, data []byte, opts *WriteOptions) (*api.WriteFileResult, error) {
	req := api.WriteFileRequest{Path: path, SessionID: t.sessionID}
	switch {
	case opts != nil && opts.Encoding == EncodingBase64:
		req.Content, req.Encoding = string(data), EncodingBase64 // the daemon decodes it
	case opts != nil && opts.Encoding != "" && opts.Encoding != EncodingUTF8:
		return nil, fmt.Errorf("write file %s in %s: %w: encoding %q: want %q or %q", path, t.describe(), ErrValidation, opts.Encoding, EncodingUTF8, EncodingBase64)
	case utf8.Valid(data):
		req.Content, req.Encoding = string(data), EncodingUTF8
	default:
		req.Content, req.Encoding = base64.StdEncoding.EncodeToString(data), EncodingBase64
	}
	if opts != nil {
		req.Mode = octalMode(opts.Mode)
	}
	return call[api.WriteFileResult](ctx, t, fmt.Sprintf("write file %s in %s", path, t.describe()), once, http.MethodPost, "/files/write", nil, req)
}

// ReadFile reads the whole file at path in the sandbox, in one JSON
// response. It returns ErrFileNotFound if there is no such file,
// ErrIsDirectory for a directory, and ErrFileTooLarge for a file larger than
// the daemon's JSON cap (32 MiB by default): read those with
// [Sandbox.ReadFileStream]. It is retried while the sandbox is unavailable.
// opts may be nil.
func (t *target) ReadFile(ctx context.Context, path string, opts *ReadOptions) (*File, error) {
	req := api.ReadFileRequest{Path: path, SessionID: t.sessionID}
	if opts != nil {
		req.Encoding = opts.Encoding
	}
	op := fmt.Sprintf("read file %s in %s", path, t.describe())
	res, err := call[api.ReadFileResult](ctx, t, op, retried, http.MethodPost, "/files/read", nil, req)
	if err != nil {
		return nil, err
	}
	data, err := api.Output(res.Content, res.Encoding)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return &File{Path: res.Path, Data: data, Content: res.Content, Encoding: res.Encoding, MimeType: res.MimeType, IsBinary: res.IsBinary, Size: res.Size}, nil
}

// Mkdir creates the directory path in the sandbox. With recursive, it
// creates missing parents too and succeeds if the directory exists already;
// without, it returns ErrFileExists if path exists and ErrFileNotFound if
// its parent does not. It is not retried.
func (t *target) Mkdir(ctx context.Context, path string, recursive bool) error {
	req := api.PathRequest{Path: path, Recursive: recursive, SessionID: t.sessionID}
	_, err := call[none](ctx, t, fmt.Sprintf("mkdir %s in %s", path, t.describe()), once, http.MethodPost, "/files/mkdir", nil, req)
	return err
}

// DeleteFile deletes the file at path in the sandbox (of a symbolic link,
// the link, not its target). It returns ErrFileNotFound if there is none
// and ErrIsDirectory for a directory, which it leaves alone (remove a tree
// with Exec("rm -r ...")). It is not retried.
func (t *target) DeleteFile(ctx context.Context, path string) error {
	req := api.PathRequest{Path: path, SessionID: t.sessionID}
	_, err := call[none](ctx, t, fmt.Sprintf("delete file %s in %s", path, t.describe()), once, http.MethodPost, "/files/delete", nil, req)
	return err
}

// RenameFile renames the file or directory oldPath to newPath, replacing a
// file at newPath. It returns ErrFileNotFound if oldPath does not exist. It
// is not retried.
func (t *target) RenameFile(ctx context.Context, oldPath, newPath string) error {
	req := api.RenameRequest{OldPath: oldPath, NewPath: newPath, SessionID: t.sessionID}
	_, err := call[none](ctx, t, fmt.Sprintf("rename %s to %s in %s", oldPath, newPath, t.describe()), once, http.MethodPost, "/files/rename", nil, req)
	return err
}

// MoveFile moves the file or directory sourcePath to destinationPath, which
// may be on another filesystem of the sandbox. It returns ErrFileNotFound if
// sourcePath does not exist. It is not retried.
func (t *target) MoveFile(ctx context.Context, sourcePath, destinationPath string) error {
	req := api.MoveRequest{SourcePath: sourcePath, DestinationPath: destinationPath, SessionID: t.sessionID}
	_, err := call[none](ctx, t, fmt.Sprintf("move %s to %s in %s", sourcePath, destinationPath, t.describe()), once, http.MethodPost, "/files/move", nil, req)
	return err
}

// ListFiles lists the directory path in the sandbox: its entries, or with
// opts.Recursive its whole tree, without hidden entries unless
// opts.IncludeHidden. It returns ErrFileNotFound if path does not exist and
// ErrNotDirectory if it is not a directory. It is retried while the sandbox
// is unavailable. opts may be nil.
func (t *target) ListFiles(ctx context.Context, path string, opts *ListFilesOptions) ([]api.FileInfo, error) {
	req := api.PathRequest{Path: path, SessionID: t.sessionID}
	if opts != nil {
		req.Recursive, req.IncludeHidden = opts.Recursive, opts.IncludeHidden
	}
	list, err := call[api.FileList](ctx, t, fmt.Sprintf("list files %s in %s", path, t.describe()), retried, http.MethodPost, "/files/list", nil, req)
	if err != nil {
		return nil, err
	}
	return list.Files, nil
}

// Exists reports whether anything (a file, a directory...) exists at path
// in the sandbox. It is retried while the sandbox is unavailable.
func (t *target) Exists(ctx context.Context, path string) (bool, error) {
	req := api.PathRequest{Path: path, SessionID: t.sessionID}
	res, err := call[api.ExistsResult](ctx, t, fmt.Sprintf("exists %s in %s", path, t.describe()), retried, http.MethodPost, "/files/exists", nil, req)
	if err != nil {
		return false, err
	}
	return res.Exists, nil
}

// octalMode writes m as the wire's octal mode ("0644", "4755"), or "" for
// zero, which leaves the mode to the daemon.
func octalMode(m os.FileMode) string {
	if m == 0 {
		return ""
	}
	bits := uint32(m.Perm())
	for _, b := range []struct {
		mode os.FileMode
		bit  uint32
	}{{os.ModeSetuid, 0o4000}, {os.ModeSetgid, 0o2000}, {os.ModeSticky, 0o1000}} {
		if m&b.mode != 0 {
			bits |= b.bit
		}
	}
	return fmt.Sprintf("%04o", bits)
}
