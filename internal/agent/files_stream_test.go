package agent_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agentclient"
)

// putFile uploads body to path with PUT /v1/files/content.
func putFile(t *testing.T, c *agentclient.Client, path string, body io.Reader, size int64, query string) (api.WriteFileResult, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, "http://agent/v1/files/content?path="+url.QueryEscape(path)+query, body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = size
	var res api.WriteFileResult
	resp, err := agentHTTP(c).Do(req)
	if err != nil {
		return res, err
	}
	defer resp.Body.Close()
	return res, decodeAnswer(t, resp, &res)
}

// getFile sends GET /v1/files/content for path, with a Range header if
// rng is not empty.
func getFile(t *testing.T, c *agentclient.Client, path, rng string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://agent/v1/files/content?path="+url.QueryEscape(path), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := agentHTTP(c).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// heapPeak samples the heap in use until stop is called, which returns
// the highest value seen.
func heapPeak() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() uint64 { close(done); wg.Wait(); return peak.Load() }
}

// A 200 MiB file goes up and down streamed: same bytes, and the process
// (agent and client both) holds no more than a few buffers of it.
func TestFileStreamLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 400 MiB")
	}
	c := startAgent(t)
	dir := t.TempDir()
	const size = 200 << 20
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	stop := heapPeak()

	up := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{1}), size), up)
	res, err := putFile(t, c, dir+"/big", src, size, "")
	if err != nil || res.Size != size || res.Path != dir+"/big" {
		t.Fatalf("put: %+v %v", res, err)
	}
	resp := getFile(t, c, dir+"/big", "")
	down := sha256.New()
	n, err := io.Copy(down, resp.Body)
	peak := stop()
	if err != nil || n != size || resp.ContentLength != size || resp.Header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("get: %d bytes, Content-Length %d, Content-Type %q: %v", n, resp.ContentLength, resp.Header.Get("Content-Type"), err)
	}
	if !bytes.Equal(up.Sum(nil), down.Sum(nil)) {
		t.Error("the file came back different")
	}
	if grew := int64(peak) - int64(base); grew > 64<<20 {
		t.Errorf("the heap grew by %d MiB moving a 200 MiB file", grew>>20)
	} else {
		t.Logf("heap growth: %.1f MiB", float64(grew)/(1<<20))
	}
}

func TestFileStreamRangeAndType(t *testing.T) {
	c := startAgent(t)
	dir := t.TempDir()
	data := make([]byte, 1000)
	for i := range data {
		data[i] = byte('a' + i%26)
	}
	if _, err := putFile(t, c, dir+"/f.txt", bytes.NewReader(data), int64(len(data)), ""); err != nil {
		t.Fatal(err)
	}
	resp := getFile(t, c, dir+"/f.txt", "bytes=100-199")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[100:200]) ||
		resp.Header.Get("Content-Range") != "bytes 100-199/1000" || resp.ContentLength != 100 {
		t.Errorf("range: %s %q %q", resp.Status, resp.Header.Get("Content-Range"), body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type of text: %q", ct)
	}
	resp = getFile(t, c, dir+"/f.txt", "bytes=990-")
	if body, _ := io.ReadAll(resp.Body); !bytes.Equal(body, data[990:]) {
		t.Errorf("open range: %q", body)
	}
	resp = getFile(t, c, dir+"/f.txt", "bytes=5000-")
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("range past the end: %s", resp.Status)
	}
	// Text whose 512-byte sample ends mid-character is still text; a short
	// file that ends mid-character is not.
	for _, tc := range []struct {
		data, ct string
	}{
		{strings.Repeat("a", 511) + strings.Repeat("é", 10), "text/plain; charset=utf-8"},
		{"abc\xc3", "text/plain"},
	} {
		if _, err := putFile(t, c, dir+"/t", strings.NewReader(tc.data), int64(len(tc.data)), ""); err != nil {
			t.Fatal(err)
		}
		if ct := getFile(t, c, dir+"/t", "").Header.Get("Content-Type"); ct != tc.ct {
			t.Errorf("Content-Type of %q: %q", tc.data[len(tc.data)-4:], ct)
		}
	}
	png := pngBytes(t)
	if _, err := putFile(t, c, dir+"/img", bytes.NewReader(png), int64(len(png)), "&mode=0600"); err != nil {
		t.Fatal(err)
	}
	resp = getFile(t, c, dir+"/img", "")
	if body, _ := io.ReadAll(resp.Body); !bytes.Equal(body, png) || resp.Header.Get("Content-Type") != "image/png" {
		t.Errorf("png: %q, %d bytes", resp.Header.Get("Content-Type"), len(body))
	}
	if fi, _ := os.Stat(dir + "/img"); fi == nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode=0600: %v", fi)
	}
	// Errors before the body are JSON errors.
	for _, tc := range []struct{ path, code string }{
		{dir + "/missing", api.CodeFileNotFound},
		{dir, api.CodeIsDirectory},
		{"", api.CodeValidationFailed},
	} {
		resp := getFile(t, c, tc.path, "")
		wantCode(t, "get "+tc.path, decodeAnswer(t, resp, nil), tc.code)
	}
	_, err := putFile(t, c, dir, strings.NewReader("x"), 1, "")
	wantCode(t, "put onto a directory", err, api.CodeIsDirectory)
	_, err = putFile(t, c, dir+"/g", strings.NewReader("x"), 1, "&mode=rwx")
	wantCode(t, "put with a bad mode", err, api.CodeValidationFailed)
	// Chunked, empty.
	if res, err := putFile(t, c, dir+"/empty", io.MultiReader(), -1, ""); err != nil || res.Size != 0 {
		t.Errorf("empty chunked upload: %+v %v", res, err)
	}
}

// Readers of the target never see a partial file: its size is the old or
// the new one, and its content matches; an upload that breaks off leaves
// the old file and no temporary file.
func TestFileAtomicWrite(t *testing.T) {
	c := startAgent(t)
	dir := t.TempDir()
	target := dir + "/f"
	const oldSize, newSize = 1 << 20, 50 << 20
	if err := os.WriteFile(target, bytes.Repeat([]byte("o"), oldSize), 0o640); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var seen sync.Map
	var bad atomic.Value
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 1)
		for {
			select {
			case <-stop:
				return
			default:
			}
			f, err := os.Open(target)
			if err != nil {
				bad.Store(err.Error())
				return
			}
			fi, _ := f.Stat()
			_, _ = f.ReadAt(buf, fi.Size()-1)
			f.Close()
			seen.Store(fi.Size(), true)
			if want := map[int64]byte{oldSize: 'o', newSize: 'n'}[fi.Size()]; want == 0 || buf[0] != want {
				bad.Store(fmt.Sprintf("size %d ending in %q", fi.Size(), buf))
				return
			}
		}
	}()
	if _, err := putFile(t, c, target, bytes.NewReader(bytes.Repeat([]byte("n"), newSize)), newSize, ""); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	close(stop)
	wg.Wait()
	if v := bad.Load(); v != nil {
		t.Fatalf("a reader saw %s", v)
	}
	if _, ok := seen.Load(int64(newSize)); !ok {
		t.Error("the reader never saw the new file")
	}
	if fi, _ := os.Stat(target); fi == nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("mode kept: %v", fi)
	}

	// An upload that breaks off halfway.
	body := io.MultiReader(bytes.NewReader(make([]byte, 4<<20)), errReader{})
	if _, err := putFile(t, c, target, body, 8<<20, ""); err == nil {
		t.Error("a broken upload succeeded")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		entries, _ := os.ReadDir(dir)
		fi, _ := os.Stat(target)
		if len(entries) == 1 && fi != nil && fi.Size() == newSize {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a broken upload: %d entries, target %v", len(entries), fi)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("client gave up") }
