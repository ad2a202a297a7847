package sandbox

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
)

const (
	pathOK  = `{"path":"/workspace/x"}`
	writeOK = `{"path":"/workspace/x","size":3}`
)

// TestFileRequests checks what each file and git call sends.
func TestFileRequests(t *testing.T) {
	sess := func(c *Client) *Session { return c.Get("demo").GetSession("s1") }
	bin := []byte{0xff, 0, 'a'}
	tests := []requestCase{{
		name: "write text",
		call: func(ctx context.Context, c *Client) error {
			_, err := c.Get("demo").WriteFile(ctx, "a.txt", []byte("héllo\x00\n"), nil)
			return err
		},
		resp: response{status: 200, body: writeOK},
		want: request{method: "POST", path: "/v1/sandboxes/demo/files/write",
			body: `{"path":"a.txt","content":"héllo\u0000\n","encoding":"utf-8"}`},
	}, {
		name: "write binary, with a mode, in a session",
		call: func(ctx context.Context, c *Client) error {
			_, err := sess(c).WriteFile(ctx, "/bin/x", bin, &WriteOptions{Mode: 0o755 | os.ModeSetuid})
			return err
		},
		resp: response{status: 200, body: writeOK},
		want: request{method: "POST", path: "/v1/sandboxes/demo/files/write",
			body: `{"path":"/bin/x","content":"` + base64.StdEncoding.EncodeToString(bin) + `","encoding":"base64","mode":"4755","sessionId":"s1"}`},
	}, {
		name: "write empty",
		call: func(ctx context.Context, c *Client) error {
			_, err := c.Get("demo").WriteFile(ctx, "e", nil, nil)
			return err
		},
		resp: response{status: 200, body: writeOK},
		want: request{method: "POST", path: "/v1/sandboxes/demo/files/write", body: `{"path":"e","content":"","encoding":"utf-8"}`},
	}, {
		name: "read",
		call: func(ctx context.Context, c *Client) error {
			_, err := sess(c).ReadFile(ctx, "a.txt", &ReadOptions{Encoding: EncodingBase64})
			return err
		},
		resp: response{status: 200, body: `{"path":"/w/a.txt","content":"","encoding":"base64"}`},
		want: request{method: "POST", path: "/v1/sandboxes/demo/files/read", body: `{"path":"a.txt","encoding":"base64","sessionId":"s1"}`},
	}, {
		name: "mkdir",
		call: func(ctx context.Context, c *Client) error { return c.Get("demo").Mkdir(ctx, "a/b", true) },
		resp: response{status: 200, body: pathOK},
		want: request{method: "POST", path: "/v1/sandboxes/demo/files/mkdir", body: `{"path":"a/b","recursive":true}`},
	}, {
		name: "delete",
		call: func(ctx context.Context, c *Client) error { return sess(c).DeleteFile(ctx, "a") },
		resp: response{status: 200, body: pathOK},
		want: request{method: "POST", path: "/v1/sandboxes/demo/files/delete", body: `{"path":"a","sessionId":"s1"}`},
	}, {
		name: "delete answered with no content",
		call: func(ctx context.Context, c *Client) error { return c.Get("demo").DeleteFile(ctx, "a") },
		resp: response{status: 204},
		want: request{method: "POST", path: "/v1/sandboxes/demo/files/delete", body: `{"path":"a"}`},
	}, {
		name: "rename",
		call: func(ctx context.Context, c *Client) error { return c.Get("demo").RenameFile(ctx, "a", "b") },
		resp: response{status: 200, body: pathOK},
		want: request{method: "POST", path: "/v1/sandboxes/demo/files/rename", body: `{"oldPath":"a","newPath":"b"}`},
	}, {
		name: "move",
		call: func(ctx context.Context, c *Client) error { return sess(c).MoveFile(ctx, "a", "/tmp/b") },
		resp: response{status: 200, body: pathOK},
		want: request{method: "POST", path: "/v1/sandboxes/demo/files/move",
			body: `{"sourcePath":"a","destinationPath":"/tmp/b","sessionId":"s1"}`},
	}, {
		name: "list",
		call: func(ctx context.Context, c *Client) error {
			_, err := c.Get("demo").ListFiles(ctx, ".", &ListFilesOptions{Recursive: true, IncludeHidden: true})
			return err
		},
		resp: response{status: 200, body: `{"files":[],"count":0}`},
		want: request{method: "POST", path: "/v1/sandboxes/demo/files/list", body: `{"path":".","recursive":true,"includeHidden":true}`},
	}, {
		name: "exists",
		call: func(ctx context.Context, c *Client) error { _, err := sess(c).Exists(ctx, "a"); return err },
		resp: response{status: 200, body: `{"exists":true}`},
		want: request{method: "POST", path: "/v1/sandboxes/demo/files/exists", body: `{"path":"a","sessionId":"s1"}`},
	}, {
		name: "git checkout",
		call: func(ctx context.Context, c *Client) error {
			_, err := sess(c).GitCheckout(ctx, "https://github.com/o/r.git",
				&GitCheckoutOptions{Branch: "dev", TargetDir: "src", Depth: 1, Timeout: 90 * time.Second})
			return err
		},
		resp: response{status: 200, body: `{"repoUrl":"https://github.com/o/r.git","branch":"dev","targetDir":"/w/src","commit":"abc"}`},
		want: request{method: "POST", path: "/v1/sandboxes/demo/git/checkout",
			body: `{"repoUrl":"https://github.com/o/r.git","branch":"dev","targetDir":"src","depth":1,"timeoutMs":90000,"sessionId":"s1"}`},
	}, {
		name: "git checkout with defaults",
		call: func(ctx context.Context, c *Client) error {
			_, err := c.Get("demo").GitCheckout(ctx, "https://github.com/o/r.git", nil)
			return err
		},
		resp: response{status: 200, body: `{}`},
		want: request{method: "POST", path: "/v1/sandboxes/demo/git/checkout", body: `{"repoUrl":"https://github.com/o/r.git"}`},
	}, {
		name: "write stream",
		call: func(ctx context.Context, c *Client) error {
			_, err := sess(c).WriteFileStream(ctx, "dir/a b", strings.NewReader("abc"), &WriteOptions{Mode: 0o600})
			return err
		},
		resp: response{status: 200, body: writeOK},
		want: request{method: "PUT", path: "/v1/sandboxes/demo/files/content", query: "mode=0600&path=dir%2Fa+b", body: "abc", session: "s1"},
	}, {
		name: "read stream of a range",
		call: func(ctx context.Context, c *Client) error {
			rc, err := sess(c).ReadFileStream(ctx, "a", &RangeOptions{Offset: 10, Length: 5})
			if err == nil {
				rc.Close()
			}
			return err
		},
		resp: response{status: 206, body: "01234"},
		want: request{method: "GET", path: "/v1/sandboxes/demo/files/content", query: "path=a", session: "s1", rng: "bytes=10-14"},
	}, {
		name: "read stream from an offset",
		call: func(ctx context.Context, c *Client) error {
			rc, err := c.Get("demo").ReadFileStream(ctx, "a", &RangeOptions{Offset: 10})
			if err == nil {
				rc.Close()
			}
			return err
		},
		resp: response{status: 206, body: "01234"},
		want: request{method: "GET", path: "/v1/sandboxes/demo/files/content", query: "path=a", rng: "bytes=10-"},
	}, {
		name: "read stream of a whole file",
		call: func(ctx context.Context, c *Client) error {
			rc, err := c.Get("demo").ReadFileStream(ctx, "a", nil)
			if err == nil {
				rc.Close()
			}
			return err
		},
		resp: response{status: 200, body: "01234"},
		want: request{method: "GET", path: "/v1/sandboxes/demo/files/content", query: "path=a"},
	}}
	checkRequests(t, tests)
}

func TestReadFileDecodes(t *testing.T) {
	bin := []byte{0, 0xff, 0xfe, '\n'}
	tests := []struct {
		name, body string
		want       File
	}{
		{"text", `{"path":"/w/a","content":"héllo\n","encoding":"utf-8","mimeType":"text/plain","size":7}`,
			File{Path: "/w/a", Data: []byte("héllo\n"), MimeType: "text/plain", Size: 7}},
		{"binary", `{"path":"/w/b","content":"` + base64.StdEncoding.EncodeToString(bin) + `","encoding":"base64","isBinary":true,"mimeType":"application/octet-stream","size":4}`,
			File{Path: "/w/b", Data: bin, MimeType: "application/octet-stream", IsBinary: true, Size: 4}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newFake(t, response{status: 200, body: tc.body})
			f, err := c.Get("demo").ReadFile(t.Context(), "a", nil)
			if err != nil {
				t.Fatal(err)
			}
			if f.Path != tc.want.Path || !bytes.Equal(f.Data, tc.want.Data) || f.Text() != string(tc.want.Data) ||
				f.MimeType != tc.want.MimeType || f.IsBinary != tc.want.IsBinary || f.Size != tc.want.Size {
				t.Errorf("file = %+v, want %+v", f, tc.want)
			}
		})
	}
	c, _ := newFake(t, response{status: 200, body: `{"content":"!!","encoding":"base64"}`})
	if _, err := c.Get("demo").ReadFile(t.Context(), "a", nil); err == nil {
		t.Error("bad base64 gave no error")
	}
}

func TestListAndExistsDecode(t *testing.T) {
	c, _ := newFake(t, response{status: 200, body: `{"files":[{"name":"a","absolutePath":"/w/a","relativePath":"a","type":"file","size":3,` +
		`"modifiedAt":"2026-11-25T12:00:00Z","mode":"0644","permissions":{"readable":true,"writable":true}}],"count":1}`})
	list, err := c.Get("demo").ListFiles(t.Context(), "/w", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != "a" || list[0].Mode != "0644" || !list[0].Permissions.Writable || list[0].ModifiedAt.Hour() != 12 {
		t.Errorf("list = %+v", list)
	}
	c, _ = newFake(t, response{status: 200, body: `{"exists":false}`})
	if ok, err := c.Get("demo").Exists(t.Context(), "nope"); ok || err != nil {
		t.Errorf("Exists = %v, %v; want false, nil", ok, err)
	}
}

func wireError(status int, code, msg string) response {
	return response{status: status, body: `{"code":"` + code + `","message":"` + msg + `","httpStatus":` + strconv.Itoa(status) + `}`}
}

func TestFileErrors(t *testing.T) {
	tests := []struct {
		name    string
		resp    response
		call    func(ctx context.Context, sb *Sandbox) error
		want    error
		wantMsg string
	}{{
		name: "delete of a directory",
		resp: wireError(400, api.CodeIsDirectory, "/w/d is a directory"),
		call: func(ctx context.Context, sb *Sandbox) error { return sb.DeleteFile(ctx, "d") },
		want: ErrIsDirectory, wantMsg: "delete file d in sandbox demo: /w/d is a directory (IS_DIRECTORY)",
	}, {
		name: "read of a large file",
		resp: wireError(413, api.CodeFileTooLarge, "file is larger than 32 MiB: use GET /files/content"),
		call: func(ctx context.Context, sb *Sandbox) error { _, err := sb.ReadFile(ctx, "big", nil); return err },
		want: ErrFileTooLarge,
	}, {
		name: "read stream of a missing file",
		resp: wireError(404, api.CodeFileNotFound, "no such file"),
		call: func(ctx context.Context, sb *Sandbox) error {
			_, err := sb.ReadFileStream(ctx, "nope", nil)
			return err
		},
		want: ErrFileNotFound, wantMsg: "read file stream nope in sandbox demo: no such file (FILE_NOT_FOUND)",
	}, {
		name: "write stream to a directory",
		resp: wireError(400, api.CodeIsDirectory, "is a directory"),
		call: func(ctx context.Context, sb *Sandbox) error {
			_, err := sb.WriteFileStream(ctx, "d", strings.NewReader("x"), nil)
			return err
		},
		want: ErrIsDirectory,
	}, {
		name: "list of a file",
		resp: wireError(400, api.CodeNotDirectory, "not a directory"),
		call: func(ctx context.Context, sb *Sandbox) error { _, err := sb.ListFiles(ctx, "f", nil); return err },
		want: ErrNotDirectory,
	}, {
		name: "git branch",
		resp: wireError(404, api.CodeGitBranchNotFound, "no branch nope"),
		call: func(ctx context.Context, sb *Sandbox) error {
			_, err := sb.GitCheckout(ctx, "https://tok3n:x-oauth@github.com/o/r", &GitCheckoutOptions{Branch: "nope"})
			return err
		},
		want: ErrGitBranchNotFound, wantMsg: "git checkout https://github.com/o/r in sandbox demo: no branch nope (GIT_BRANCH_NOT_FOUND)",
	}, {
		name: "git auth",
		resp: wireError(401, api.CodeGitAuthFailed, "authentication failed"),
		call: func(ctx context.Context, sb *Sandbox) error {
			_, err := sb.GitCheckout(ctx, "https://h/o/r", nil)
			return err
		},
		want: ErrGitAuthFailed,
	}, {
		name: "git target not empty",
		resp: wireError(409, api.CodeFileExists, "target not empty"),
		call: func(ctx context.Context, sb *Sandbox) error {
			_, err := sb.GitCheckout(ctx, "https://h/o/r", nil)
			return err
		},
		want: ErrFileExists,
	}, {
		name: "git repository",
		resp: wireError(404, api.CodeGitRepoNotFound, "no repo"),
		call: func(ctx context.Context, sb *Sandbox) error {
			_, err := sb.GitCheckout(ctx, "https://h/o/r", nil)
			return err
		},
		want: ErrGitRepoNotFound,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newFake(t, tc.resp)
			err := tc.call(t.Context(), c.Get("demo"))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.wantMsg != "" && err.Error() != tc.wantMsg {
				t.Errorf("err = %q, want %q", err, tc.wantMsg)
			}
		})
	}
}

// TestFileRetries checks that reads are retried while the sandbox is
// unavailable and writes are not.
func TestFileRetries(t *testing.T) {
	tests := []struct {
		name      string
		ok        response
		call      func(ctx context.Context, sb *Sandbox) error
		wantCalls int
	}{
		{"read", response{status: 200, body: `{"content":"x"}`},
			func(ctx context.Context, sb *Sandbox) error { _, err := sb.ReadFile(ctx, "a", nil); return err }, 2},
		{"read stream", response{status: 200, body: "x"},
			func(ctx context.Context, sb *Sandbox) error {
				rc, err := sb.ReadFileStream(ctx, "a", nil)
				if err == nil {
					rc.Close()
				}
				return err
			}, 2},
		{"list", response{status: 200, body: `{"files":[]}`},
			func(ctx context.Context, sb *Sandbox) error { _, err := sb.ListFiles(ctx, "a", nil); return err }, 2},
		{"exists", response{status: 200, body: `{"exists":true}`},
			func(ctx context.Context, sb *Sandbox) error { _, err := sb.Exists(ctx, "a"); return err }, 2},
		{"write", response{status: 200, body: writeOK},
			func(ctx context.Context, sb *Sandbox) error { _, err := sb.WriteFile(ctx, "a", nil, nil); return err }, 1},
		{"write stream", response{status: 200, body: writeOK},
			func(ctx context.Context, sb *Sandbox) error {
				_, err := sb.WriteFileStream(ctx, "a", strings.NewReader("x"), nil)
				return err
			}, 1},
		{"delete", response{status: 200, body: pathOK},
			func(ctx context.Context, sb *Sandbox) error { return sb.DeleteFile(ctx, "a") }, 1},
		{"move", response{status: 200, body: pathOK},
			func(ctx context.Context, sb *Sandbox) error { return sb.MoveFile(ctx, "a", "b") }, 1},
		{"git checkout", response{status: 200, body: `{}`},
			func(ctx context.Context, sb *Sandbox) error {
				_, err := sb.GitCheckout(ctx, "https://h/r", nil)
				return err
			}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, f := newFake(t, unavailable, tc.ok)
			err := tc.call(t.Context(), c.Get("demo"))
			if n := len(f.seen()); n != tc.wantCalls {
				t.Errorf("daemon got %d calls, want %d", n, tc.wantCalls)
			}
			if retried := tc.wantCalls > 1; retried != (err == nil) || (!retried && !errors.Is(err, ErrUnavailable)) {
				t.Errorf("err = %v", err)
			}
		})
	}
}

// TestReadFileStreamRangeIgnored checks that a range is cut out of the
// whole file when the daemon ignores the Range header.
func TestReadFileStreamRangeIgnored(t *testing.T) {
	tests := []struct {
		rng  RangeOptions
		want string
	}{
		{RangeOptions{Offset: 2, Length: 3}, "234"},
		{RangeOptions{Offset: 8}, "89"},
		{RangeOptions{Length: 2}, "01"},
		{RangeOptions{Offset: 20}, ""},
	}
	for _, tc := range tests {
		c, _ := newFake(t, response{status: 200, body: "0123456789"})
		rc, err := c.Get("demo").ReadFileStream(t.Context(), "a", &tc.rng)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || string(got) != tc.want {
			t.Errorf("range %+v read %q, %v; want %q", tc.rng, got, err, tc.want)
		}
	}
	// http.ServeContent answers 416 for a range past the end.
	c, _ := newFake(t, response{status: 416, header: http.Header{"Content-Range": {"bytes */10"}}, body: "invalid range: failed to overlap\n"})
	rc, err := c.Get("demo").ReadFileStream(t.Context(), "a", &RangeOptions{Offset: 10})
	if err != nil {
		t.Fatalf("range past the end: %v", err)
	}
	if b, err := io.ReadAll(rc); len(b) != 0 || err != nil {
		t.Errorf("range past the end read %q, %v", b, err)
	}
	rc.Close()
	c, f := newFake(t, response{status: 200})
	if _, err := c.Get("demo").ReadFileStream(t.Context(), "a", &RangeOptions{Offset: -1}); !errors.Is(err, ErrValidation) {
		t.Errorf("negative offset: err = %v, want ErrValidation", err)
	}
	if n := len(f.seen()); n != 0 {
		t.Errorf("negative offset sent %d requests", n)
	}
}

// pattern is the repeating content of a patternReader: byte i is i%251.
var pattern = func() []byte {
	b := make([]byte, 251+1<<20)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}()

// patternAt returns the n bytes of the pattern at offset off, for n up to
// 1 MiB.
func patternAt(off int64, n int) []byte { return pattern[off%251 : off%251+int64(n)] }

// patternReader yields n bytes of the repeating pattern without holding
// them.
type patternReader struct{ n, off int64 }

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	k := copy(p, patternAt(r.off, int(min(int64(len(p)), r.n-r.off, 1<<20))))
	r.off += int64(k)
	return k, nil
}

// TestWriteFileStreamConstantMemory uploads 100 MiB and checks that the
// daemon got every byte in order while the process allocated far less than
// the file's size: the SDK streams the reader, it does not buffer it.
func TestWriteFileStreamConstantMemory(t *testing.T) {
	const size = 100 << 20
	var got, bad atomic.Int64
	var chunked atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunked.Store(r.ContentLength < 0)
		buf := make([]byte, 64<<10)
		var off int64
		for {
			n, err := r.Body.Read(buf)
			if !bytes.Equal(buf[:n], patternAt(off, n)) {
				bad.Add(1)
			}
			off += int64(n)
			if err != nil {
				break
			}
		}
		got.Store(off)
		io.WriteString(w, `{"path":"/w/big","size":`+strconv.FormatInt(off, 10)+`}`)
	}))
	defer srv.Close()
	c, err := NewClient(Options{URL: srv.URL, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	res, err := c.Get("demo").WriteFileStream(t.Context(), "big", &patternReader{n: size}, nil)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if got.Load() != size || bad.Load() != 0 || res.Size != size {
		t.Errorf("daemon got %d bytes (%d chunks wrong), result %+v; want %d", got.Load(), bad.Load(), res, size)
	}
	if !chunked.Load() {
		t.Error("a reader of unknown length was not sent chunked")
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("uploading %d MiB allocated %d KiB", size>>20, alloc>>10)
	if alloc > 16<<20 {
		t.Errorf("uploading %d MiB allocated %d MiB", size>>20, alloc>>20)
	}
}

// TestWriteFileStreamLength checks which readers are sent with a
// Content-Length, that they are read from where they are, and that they are
// not closed.
func TestWriteFileStreamLength(t *testing.T) {
	var length atomic.Int64
	var body atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		length.Store(r.ContentLength)
		body.Store(string(b))
		io.WriteString(w, writeOK)
	}))
	defer srv.Close()
	c, _ := NewClient(Options{URL: srv.URL, HTTPClient: srv.Client()})

	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(4, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	atEnd, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer atEnd.Close()
	if _, err := atEnd.Seek(0, io.SeekEnd); err != nil {
		t.Fatal(err)
	}
	br := bytes.NewReader([]byte("abcdef"))
	br.Seek(2, io.SeekStart)
	pr, pw := io.Pipe()
	go func() { pw.Write([]byte("piped")); pw.Close() }()
	tests := []struct {
		name       string
		r          io.Reader
		wantLength int64
		wantBody   string
	}{
		{"file from its offset", f, 6, "456789"},
		{"file at its end", atEnd, 0, ""},
		{"bytes reader from its offset", br, 4, "cdef"},
		{"bytes buffer", bytes.NewBufferString("buf"), 3, "buf"},
		{"empty string", strings.NewReader(""), 0, ""},
		{"nil", nil, 0, ""},
		{"pipe", pr, -1, "piped"},
	}
	for _, tc := range tests {
		if _, err := c.Get("demo").WriteFileStream(t.Context(), "x", tc.r, nil); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if l, b := length.Load(), body.Load().(string); l != tc.wantLength || b != tc.wantBody {
			t.Errorf("%s: sent %q with length %d, want %q with %d", tc.name, b, l, tc.wantBody, tc.wantLength)
		}
	}
	if _, err := f.Stat(); err != nil {
		t.Errorf("the file was closed: %v", err)
	}
}

// TestWriteFileStreamReaderError checks that an error reading the body
// aborts the upload and is returned.
func TestWriteFileStreamReaderError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, writeOK)
	}))
	defer srv.Close()
	c, _ := NewClient(Options{URL: srv.URL, HTTPClient: srv.Client()})
	boom := errors.New("disk on fire")
	r := io.MultiReader(strings.NewReader("part"), &errReader{boom})
	if _, err := c.Get("demo").WriteFileStream(t.Context(), "x", r, nil); !errors.Is(err, boom) {
		t.Errorf("err = %v, want %v", err, boom)
	}
}

type errReader struct{ err error }

func (r *errReader) Read([]byte) (int, error) { return 0, r.err }

// TestWriteFileStreamEarlyError checks that an error the daemon answers
// with before reading a large body still reaches the caller as itself.
func TestWriteFileStreamEarlyError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(404)
		io.WriteString(w, `{"code":"FILE_NOT_FOUND","message":"no directory /nope","httpStatus":404}`)
	}))
	defer srv.Close()
	c, _ := NewClient(Options{URL: srv.URL, HTTPClient: srv.Client()})
	_, err := c.Get("demo").WriteFileStream(t.Context(), "/nope/x", &patternReader{n: 64 << 20}, nil)
	if !errors.Is(err, ErrFileNotFound) {
		t.Errorf("err = %v, want ErrFileNotFound", err)
	}
}

// WriteFileStream sends bytes as they are: an encoding, meant for
// WriteFile, is refused before any request.
func TestWriteFileStreamRefusesEncoding(t *testing.T) {
	c, f := newFake(t, response{status: 200, body: `{"path":"/w/a","size":2}`})
	_, err := c.Get("demo").WriteFileStream(t.Context(), "a", strings.NewReader("aGk="), &WriteOptions{Encoding: EncodingBase64})
	if !errors.Is(err, ErrValidation) {
		t.Errorf("WriteFileStream with base64: %v; want ErrValidation", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.requests) != 0 {
		t.Errorf("requests sent: %+v", f.requests)
	}
}
