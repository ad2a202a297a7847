package agent_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agentclient"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

// agentHTTP is a plain HTTP client of the agent (any host: the agent's
// socket).
func agentHTTP(c *agentclient.Client) *http.Client { return &http.Client{Transport: c.Transport()} }

// filesCall posts in as JSON to the agent's route and decodes the answer
// into out; an error answer is returned rebuilt from its wire code. It
// may run in any goroutine.
func filesCall(t *testing.T, c *agentclient.Client, route string, in, out any) error {
	t.Helper()
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	resp, err := agentHTTP(c).Post("http://agent"+route, "application/json", bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("%s: %w", route, err)
	}
	defer resp.Body.Close()
	return decodeAnswer(t, resp, out)
}

// decodeAnswer decodes an answer of the agent into out, or returns its
// error (an error answer must come with its code's status).
func decodeAnswer(t *testing.T, resp *http.Response, out any) error {
	t.Helper()
	if resp.StatusCode >= 300 {
		var e api.Error
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
			return fmt.Errorf("%s: error answer: %w", resp.Status, err)
		}
		if e.HTTPStatus != resp.StatusCode || api.HTTPStatus(e.Code) != resp.StatusCode {
			t.Errorf("code %s came with status %d (body says %d)", e.Code, resp.StatusCode, e.HTTPStatus)
		}
		return errdefs.FromWire(e)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return fmt.Errorf("decode answer: %w", err)
		}
	}
	return nil
}

func mustCall(t *testing.T, c *agentclient.Client, route string, in, out any) {
	t.Helper()
	if err := filesCall(t, c, route, in, out); err != nil {
		t.Fatalf("%s %+v: %v", route, in, err)
	}
}

// wantCode checks that err carries the wire code want.
func wantCode(t *testing.T, what string, err error, want string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error, want %s", what, want)
	} else if got := errdefs.Code(err); got != want {
		t.Errorf("%s: %v (code %s), want %s", what, err, got, want)
	}
}

func writeFile(t *testing.T, c *agentclient.Client, path string, data []byte) api.WriteFileResult {
	t.Helper()
	req := api.WriteFileRequest{Path: path, Content: base64.StdEncoding.EncodeToString(data), Encoding: api.EncodingBase64}
	var res api.WriteFileResult
	mustCall(t, c, "/v1/files/write", req, &res)
	return res
}

func readFile(t *testing.T, c *agentclient.Client, path, encoding string) (api.ReadFileResult, []byte) {
	t.Helper()
	var res api.ReadFileResult
	mustCall(t, c, "/v1/files/read", api.ReadFileRequest{Path: path, Encoding: encoding}, &res)
	data, err := api.Output(res.Content, res.Encoding)
	if err != nil {
		t.Fatalf("decode content: %v", err)
	}
	return res, data
}

func pngBytes(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	for i := range 8 {
		img.Set(i, i, color.RGBA{R: 255, A: 255})
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestFileRoundTrip(t *testing.T) {
	c := startAgent(t)
	dir := t.TempDir()
	cases := []struct {
		name     string
		data     []byte
		binary   bool
		mimeType string
		encoding string // the default one
	}{
		{"a.txt", []byte("hello\nwörld\n"), false, "text/plain", "utf-8"},
		{"noext", []byte("plain text"), false, "text/plain", "utf-8"},
		{"img.png", pngBytes(t), true, "image/png", "base64"},
		{"empty", nil, false, "text/plain", "utf-8"},
		{"data.json", []byte(`{"a": 1}`), false, "application/json", "utf-8"},
		{"main.py", []byte("print('hi')\n"), false, "text/x-python", "utf-8"},
		{"README.md", []byte("# Title\n"), false, "text/markdown", "utf-8"},
		{"page.html", []byte("<!DOCTYPE html><p>x</p>"), false, "text/html", "utf-8"},
		// The content decides text or binary; the extension refines text only.
		{"fake.png", []byte("not an image"), false, "text/plain", "utf-8"},
		{"nul.txt", []byte("a\x00b"), true, "application/octet-stream", "base64"},
		{"latin1.txt", []byte("caf\xe9"), true, "text/plain", "base64"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			if res := writeFile(t, c, p, tc.data); res.Path != p || res.Size != int64(len(tc.data)) {
				t.Errorf("write: %+v", res)
			}
			res, data := readFile(t, c, p, "")
			if !bytes.Equal(data, tc.data) || res.Size != int64(len(tc.data)) || res.Path != p {
				t.Errorf("read back %q (size %d, path %s), wrote %q", data, res.Size, res.Path, tc.data)
			}
			if res.IsBinary != tc.binary || res.MimeType != tc.mimeType || res.Encoding != tc.encoding {
				t.Errorf("isBinary %v mimeType %q encoding %q; want %v %q %q", res.IsBinary, res.MimeType, res.Encoding, tc.binary, tc.mimeType, tc.encoding)
			}
			if onDisk, _ := os.ReadFile(p); !bytes.Equal(onDisk, tc.data) {
				t.Errorf("on disk: %q", onDisk)
			}
			// base64 on request, whatever the content.
			if res, data := readFile(t, c, p, "base64"); res.Encoding != "base64" || !bytes.Equal(data, tc.data) {
				t.Errorf("base64 read: %+v", res)
			}
		})
	}
	// Text as utf-8 arrives as a JSON string; the utf-8 write encoding too.
	p := filepath.Join(dir, "u.txt")
	mustCall(t, c, "/v1/files/write", api.WriteFileRequest{Path: p, Content: "é\x00z"}, nil)
	if res, _ := readFile(t, c, p, "utf-8"); res.Content != "é\x00z" || res.Encoding != "utf-8" {
		t.Errorf("utf-8 read with NUL: %+v", res)
	}
	// Content that is not UTF-8, asked for as utf-8: refused, not mangled.
	err := filesCall(t, c, "/v1/files/read", api.ReadFileRequest{Path: filepath.Join(dir, "img.png"), Encoding: "utf-8"}, nil)
	wantCode(t, "png as utf-8", err, api.CodeValidationFailed)
}

func TestFileJSONCap(t *testing.T) {
	c := startAgent(t)
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, 32<<20+1); err != nil {
		t.Fatal(err)
	}
	err := filesCall(t, c, "/v1/files/read", api.ReadFileRequest{Path: big}, nil)
	wantCode(t, "read 32 MiB + 1", err, api.CodeFileTooLarge)
	if err != nil && !strings.Contains(err.Error(), "/v1/files/content") {
		t.Errorf("the message does not point to the streaming call: %v", err)
	}
	err = filesCall(t, c, "/v1/files/write", api.WriteFileRequest{Path: filepath.Join(dir, "w"), Content: strings.Repeat("a", 32<<20+1)}, nil)
	wantCode(t, "write 32 MiB + 1", err, api.CodeFileTooLarge)
	if _, err := os.Stat(filepath.Join(dir, "w")); err == nil {
		t.Error("a refused write created the file")
	}
}

func TestFileErrors(t *testing.T) {
	c := startAgent(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	sub := filepath.Join(dir, "sub")
	fifo := filepath.Join(dir, "fifo")
	for _, err := range []error{os.WriteFile(file, []byte("x"), 0o644), os.Mkdir(sub, 0o755), unix.Mkfifo(fifo, 0o644)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	missing := filepath.Join(dir, "missing")
	type req = api.PathRequest
	cases := []struct {
		name, route string
		body        any
		code        string
	}{
		{"read missing", "/v1/files/read", api.ReadFileRequest{Path: missing}, api.CodeFileNotFound},
		{"read dir", "/v1/files/read", api.ReadFileRequest{Path: sub}, api.CodeIsDirectory},
		{"read through a file", "/v1/files/read", api.ReadFileRequest{Path: file + "/x"}, api.CodeNotDirectory},
		{"read fifo", "/v1/files/read", api.ReadFileRequest{Path: fifo}, api.CodeValidationFailed},
		{"read empty path", "/v1/files/read", api.ReadFileRequest{Path: ""}, api.CodeValidationFailed},
		{"read NUL", "/v1/files/read", api.ReadFileRequest{Path: dir + "/a\x00b"}, api.CodeValidationFailed},
		{"read long path", "/v1/files/read", api.ReadFileRequest{Path: "/" + strings.Repeat("a", 4096)}, api.CodeValidationFailed},
		{"read bad encoding", "/v1/files/read", api.ReadFileRequest{Path: file, Encoding: "latin1"}, api.CodeValidationFailed},
		{"read the agent's memory", "/v1/files/read", api.ReadFileRequest{Path: "/proc/self/environ"}, api.CodePermissionDenied},
		{"read unknown session", "/v1/files/read", api.ReadFileRequest{Path: file, SessionID: "nope"}, api.CodeSessionNotFound},
		{"write dir", "/v1/files/write", api.WriteFileRequest{Path: sub, Content: "x"}, api.CodeIsDirectory},
		{"write missing parent", "/v1/files/write", api.WriteFileRequest{Path: missing + "/f", Content: "x"}, api.CodeFileNotFound},
		{"write through a file", "/v1/files/write", api.WriteFileRequest{Path: file + "/f", Content: "x"}, api.CodeNotDirectory},
		{"write fifo", "/v1/files/write", api.WriteFileRequest{Path: fifo, Content: "x"}, api.CodeValidationFailed},
		{"write bad base64", "/v1/files/write", api.WriteFileRequest{Path: file, Content: "!!", Encoding: "base64"}, api.CodeValidationFailed},
		{"write bad mode", "/v1/files/write", api.WriteFileRequest{Path: file, Content: "x", Mode: "0999"}, api.CodeValidationFailed},
		{"write bad encoding", "/v1/files/write", api.WriteFileRequest{Path: file, Content: "x", Encoding: "hex"}, api.CodeValidationFailed},
		{"mkdir existing", "/v1/files/mkdir", req{Path: sub}, api.CodeFileExists},
		{"mkdir missing parent", "/v1/files/mkdir", req{Path: missing + "/d"}, api.CodeFileNotFound},
		{"mkdir -p over a file", "/v1/files/mkdir", req{Path: file, Recursive: true}, api.CodeFileExists},
		{"delete dir", "/v1/files/delete", req{Path: sub}, api.CodeIsDirectory},
		{"delete missing", "/v1/files/delete", req{Path: missing}, api.CodeFileNotFound},
		{"rename missing", "/v1/files/rename", api.RenameRequest{OldPath: missing, NewPath: dir + "/n"}, api.CodeFileNotFound},
		{"rename onto a dir", "/v1/files/rename", api.RenameRequest{OldPath: file, NewPath: sub}, api.CodeFileExists},
		{"rename dir onto a file", "/v1/files/rename", api.RenameRequest{OldPath: sub, NewPath: file}, api.CodeFileExists},
		{"rename dir into itself", "/v1/files/rename", api.RenameRequest{OldPath: sub, NewPath: sub + "/in"}, api.CodeValidationFailed},
		{"rename to missing dir", "/v1/files/rename", api.RenameRequest{OldPath: file, NewPath: missing + "/n"}, api.CodeFileNotFound},
		{"rename empty", "/v1/files/rename", api.RenameRequest{OldPath: file}, api.CodeValidationFailed},
		{"move missing", "/v1/files/move", api.MoveRequest{SourcePath: missing, DestinationPath: dir + "/n"}, api.CodeFileNotFound},
		{"move onto a dir", "/v1/files/move", api.MoveRequest{SourcePath: file, DestinationPath: sub}, api.CodeFileExists},
		{"list a file", "/v1/files/list", req{Path: file}, api.CodeNotDirectory},
		{"list missing", "/v1/files/list", req{Path: missing}, api.CodeFileNotFound},
		{"exists NUL", "/v1/files/exists", req{Path: "a\x00"}, api.CodeValidationFailed},
		{"bad JSON", "/v1/files/read", json.RawMessage(`"x"`), api.CodeValidationFailed},
	}
	for _, tc := range cases {
		wantCode(t, tc.name, filesCall(t, c, tc.route, tc.body, nil), tc.code)
	}

	// PERMISSION_DENIED: root may do most things, not write into an
	// immutable directory.
	locked := filepath.Join(dir, "locked")
	if err := os.Mkdir(locked, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := setImmutable(locked, true); err != nil {
		t.Logf("no immutable directories here (%v): PERMISSION_DENIED of writes not tested", err)
	} else {
		t.Cleanup(func() { _ = setImmutable(locked, false) })
		err := filesCall(t, c, "/v1/files/write", api.WriteFileRequest{Path: locked + "/f", Content: "x"}, nil)
		wantCode(t, "write into an immutable directory", err, api.CodePermissionDenied)
		err = filesCall(t, c, "/v1/files/mkdir", req{Path: locked + "/d"}, nil)
		wantCode(t, "mkdir in an immutable directory", err, api.CodePermissionDenied)
	}
	// What is untouched by the failures above.
	if b, _ := os.ReadFile(file); string(b) != "x" {
		t.Errorf("file changed: %q", b)
	}
	// Reading /proc is fine, just not the agent's own entries, those of
	// its threads included (the agent runs in this process).
	if res, _ := readFile(t, c, "/proc/self/../cpuinfo", ""); res.Size == 0 || res.MimeType != "text/plain" {
		t.Errorf("/proc/cpuinfo: %+v", res)
	}
	tids, _ := os.ReadDir("/proc/self/task")
	for _, e := range tids {
		if e.Name() == strconv.Itoa(os.Getpid()) {
			continue
		}
		for _, p := range []string{"/proc/" + e.Name() + "/environ", fmt.Sprintf("/proc/%d/task/%s/environ", os.Getpid(), e.Name())} {
			err := filesCall(t, c, "/v1/files/read", api.ReadFileRequest{Path: p}, nil)
			wantCode(t, "read "+p+" (an agent thread's)", err, api.CodePermissionDenied)
		}
		break
	}
}

const fsImmutableFL = 0x10 // FS_IMMUTABLE_FL, from linux/fs.h

func setImmutable(path string, on bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil {
		return err
	}
	if on {
		flags |= fsImmutableFL
	} else {
		flags &^= fsImmutableFL
	}
	return unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags))
}

// Concurrent writes: to different files, all land; to one file, one of
// them wins whole.
func TestFileConcurrentWrites(t *testing.T) {
	c := startAgent(t)
	dir := t.TempDir()
	const n = 16
	content := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i)}, 256<<10+i) }
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(2)
		for _, p := range []string{fmt.Sprintf("%s/f%d", dir, i), dir + "/shared"} {
			go func() {
				defer wg.Done()
				req := api.WriteFileRequest{Path: p, Content: base64.StdEncoding.EncodeToString(content(i)), Encoding: "base64"}
				if err := filesCall(t, c, "/v1/files/write", req, nil); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()
	for i := range n {
		if b, _ := os.ReadFile(fmt.Sprintf("%s/f%d", dir, i)); !bytes.Equal(b, content(i)) {
			t.Errorf("f%d: %d bytes", i, len(b))
		}
	}
	b, _ := os.ReadFile(dir + "/shared")
	if len(b) < 256<<10 || !bytes.Equal(b, content(len(b)-256<<10)) {
		t.Errorf("shared: %d bytes, not one whole write", len(b))
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != n+1 {
		t.Errorf("%d entries: temporary files left?", len(entries))
	}
	var st syscall.Stat_t
	if err := syscall.Stat(dir+"/shared", &st); err != nil || st.Uid != uint32(os.Geteuid()) {
		t.Errorf("owner of a new file: %d (%v)", st.Uid, err)
	}
}
