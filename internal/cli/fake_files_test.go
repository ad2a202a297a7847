package cli

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sandboxd/sandboxd/api"
)

// memFile is a file, directory or symbolic link of a memFS.
type memFile struct {
	dir   bool
	link  string // a symbolic link's target
	data  []byte
	mode  fs.FileMode // permission bits
	mtime time.Time
}

// memFS is a sandbox's file tree, by absolute clean path.
type memFS map[string]*memFile

var fakeTime = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func newMemFS() memFS {
	m := memFS{}
	for _, d := range []string{"/", "/tmp", "/workspace", "/workspace/dir"} {
		m[d] = &memFile{dir: true, mode: 0o755, mtime: fakeTime}
	}
	return m
}

// abs resolves p against the working directory, /workspace.
func (m memFS) abs(p string) string {
	if !path.IsAbs(p) {
		p = path.Join("/workspace", p)
	}
	return path.Clean(p)
}

// put stores f at p, if p's parent is a directory.
func (m memFS) put(p string, f *memFile) bool {
	if parent := m[path.Dir(p)]; parent == nil || !parent.dir {
		return false
	}
	m[p] = f
	return true
}

// under returns the paths under directory p, sorted.
func (m memFS) under(p string) []string {
	var out []string
	for _, q := range slices.Sorted(maps.Keys(m)) {
		if q != p && strings.HasPrefix(q, strings.TrimSuffix(p, "/")+"/") {
			out = append(out, q)
		}
	}
	return out
}

// routeFiles serves the file calls from f.files, and exec of the few
// commands the CLI sends: test -d, and tar creating or extracting an
// archive.
func (f *fakeDaemon) routeFiles(mux *http.ServeMux) {
	f.files = newMemFS()
	mux.HandleFunc("PUT /v1/sandboxes/{id}/files/content", func(w http.ResponseWriter, r *http.Request) {
		p := f.files.abs(r.URL.Query().Get("path"))
		if old := f.files[p]; old != nil && old.dir {
			writeError(w, api.CodeIsDirectory, p+" is a directory", 400)
			return
		}
		mode := uint64(0o644)
		if m := r.URL.Query().Get("mode"); m != "" {
			mode, _ = strconv.ParseUint(m, 8, 32)
		}
		data, err := io.ReadAll(r.Body)
		if err != nil {
			writeError(w, api.CodeInternal, err.Error(), 500)
			return
		}
		if !f.files.put(p, &memFile{data: data, mode: fs.FileMode(mode), mtime: fakeTime}) {
			writeError(w, api.CodeFileNotFound, "no directory "+path.Dir(p), 404)
			return
		}
		json.NewEncoder(w).Encode(api.WriteFileResult{Path: p, Size: int64(len(data))})
	})
	mux.HandleFunc("GET /v1/sandboxes/{id}/files/content", func(w http.ResponseWriter, r *http.Request) {
		p := f.files.abs(r.URL.Query().Get("path"))
		switch file := f.files[p]; {
		case file == nil:
			writeError(w, api.CodeFileNotFound, "no such file "+p, 404)
		case file.dir:
			writeError(w, api.CodeIsDirectory, p+" is a directory", 400)
		default:
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write(file.data)
		}
	})
	mux.HandleFunc("POST /v1/sandboxes/{id}/files/delete", func(w http.ResponseWriter, r *http.Request) {
		var req api.PathRequest
		json.NewDecoder(r.Body).Decode(&req)
		p := f.files.abs(req.Path)
		switch file := f.files[p]; {
		case file == nil:
			writeError(w, api.CodeFileNotFound, "no such file "+p, 404)
		case file.dir:
			writeError(w, api.CodeIsDirectory, p+" is a directory", 400)
		default:
			delete(f.files, p)
			json.NewEncoder(w).Encode(api.PathResult{Path: p})
		}
	})
	mux.HandleFunc("POST /v1/sandboxes/{id}/files/list", func(w http.ResponseWriter, r *http.Request) {
		var req api.PathRequest
		json.NewDecoder(r.Body).Decode(&req)
		p := f.files.abs(req.Path)
		switch dir := f.files[p]; {
		case dir == nil:
			writeError(w, api.CodeFileNotFound, "no such directory "+p, 404)
		case !dir.dir:
			writeError(w, api.CodeNotDirectory, p+" is not a directory", 400)
		default:
			list := api.FileList{Files: []api.FileInfo{}}
			for _, q := range f.files.under(p) {
				rel := strings.TrimPrefix(strings.TrimPrefix(q, p), "/")
				hidden := strings.HasPrefix(path.Base(q), ".") || strings.Contains(rel, "/.")
				if (!req.Recursive && strings.Contains(rel, "/")) || (hidden && !req.IncludeHidden) {
					continue
				}
				file := f.files[q]
				info := api.FileInfo{Name: path.Base(q), AbsolutePath: q, RelativePath: rel, Type: "file",
					Size: int64(len(file.data)), ModifiedAt: file.mtime, Mode: fmt.Sprintf("%04o", file.mode)}
				switch {
				case file.dir:
					info.Type, info.Size = "directory", 4096
				case file.link != "":
					info.Type = "symlink"
				}
				list.Files = append(list.Files, info)
			}
			list.Count = len(list.Files)
			json.NewEncoder(w).Encode(list)
		}
	})
	mux.HandleFunc("GET /v1/sandboxes/{id}/files/watch", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("path") != "/workspace" || q.Get("recursive") != "true" || strings.Join(q["exclude"], ",") != "node_modules,*.tmp" {
			writeError(w, api.CodeValidationFailed, "unexpected query "+r.URL.RawQuery, 400)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "event: watching\ndata: {\"type\":\"watching\"}\n\n: ping\n\n")
		for _, ev := range []api.WatchEvent{
			{EventType: "create", Path: "/workspace/src", IsDirectory: true},
			{EventType: "modify", Path: "/workspace/a.go"},
			{EventType: "move", Path: "/workspace/b.go", OldPath: "/workspace/a.go"},
		} {
			ev.Type = "event"
			b, _ := json.Marshal(ev)
			fmt.Fprintf(w, "event: event\ndata: %s\n\n", b)
		}
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	mux.HandleFunc("POST /v1/sandboxes/{id}/exec", func(w http.ResponseWriter, r *http.Request) {
		var req api.ExecRequest
		json.NewDecoder(r.Body).Decode(&req)
		code, stderr := f.files.exec(req.Command)
		json.NewEncoder(w).Encode(api.ExecResult{Success: code == 0, ExitCode: code, Stderr: stderr, Command: req.Command})
	})
}

// A shell word as shellQuote writes it: plain, or single-quoted pieces
// joined by \'.
const word = `((?:'[^']*'|\\'|[^\s'\\])+)`

var (
	testDirRe = regexp.MustCompile(`^test -d ` + word + `$`)
	untarRe   = regexp.MustCompile(`^\(mkdir -p ` + word + ` && tar -xf ` + word + ` -C ` + word + `; s=\$\?; rm -f ` + word + `; exit \$s\)$`)
	tarRe     = regexp.MustCompile(`^tar -cf ` + word + ` -C ` + word + ` \.$`)
)

// unquote reverses shellQuote.
func unquote(w string) string {
	var b strings.Builder
	for i := 0; i < len(w); i++ {
		switch w[i] {
		case '\'':
			j := strings.IndexByte(w[i+1:], '\'')
			b.WriteString(w[i+1 : i+1+j])
			i += j + 1
		case '\\':
			i++
			b.WriteByte(w[i])
		default:
			b.WriteByte(w[i])
		}
	}
	return b.String()
}

// exec runs one of the commands the CLI sends, as the sandbox's shell and
// GNU tar would, and returns its exit code and stderr.
func (m memFS) exec(command string) (int, string) {
	if g := testDirRe.FindStringSubmatch(command); g != nil {
		if d := m[m.abs(unquote(g[1]))]; d != nil && d.dir {
			return 0, ""
		}
		return 1, ""
	}
	if g := untarRe.FindStringSubmatch(command); g != nil {
		dst, tmp := m.abs(unquote(g[1])), m.abs(unquote(g[2]))
		if unquote(g[3]) != unquote(g[1]) || unquote(g[4]) != unquote(g[2]) {
			return 2, "mismatched paths"
		}
		defer delete(m, tmp)
		return m.untar(tmp, dst)
	}
	if g := tarRe.FindStringSubmatch(command); g != nil {
		return m.tar(m.abs(unquote(g[1])), m.abs(unquote(g[2])))
	}
	return 127, "fake daemon: unknown command: " + command
}

// untar extracts the archive at tmp into dst, making dst and its parents
// first, as mkdir -p does.
func (m memFS) untar(tmp, dst string) (int, string) {
	var missing []string
	for d := dst; m[d] == nil; d = path.Dir(d) {
		missing = append(missing, d)
	}
	for _, d := range slices.Backward(missing) {
		m.put(d, &memFile{dir: true, mode: 0o755, mtime: fakeTime})
	}
	archive := m[tmp]
	if archive == nil {
		return 2, "tar: " + tmp + ": Cannot open: No such file or directory"
	}
	tr := tar.NewReader(bytes.NewReader(archive.data))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return 0, ""
		}
		if err != nil {
			return 2, "tar: " + err.Error()
		}
		data, _ := io.ReadAll(tr)
		p := path.Join(dst, hdr.Name)
		if !m.put(p, &memFile{dir: hdr.Typeflag == tar.TypeDir, link: hdr.Linkname, data: data,
			mode: fs.FileMode(hdr.Mode).Perm(), mtime: hdr.ModTime}) {
			return 2, "tar: " + p + ": Cannot open: No such file or directory"
		}
	}
}

// tar archives the directory src to tmp as GNU tar -C src . does.
func (m memFS) tar(tmp, src string) (int, string) {
	d := m[src]
	if d == nil || !d.dir {
		return 2, "tar: " + src + ": Cannot open: Not a directory"
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "./", Mode: int64(d.mode), ModTime: d.mtime})
	for _, q := range m.under(src) {
		file := m[q]
		hdr := &tar.Header{Name: "./" + strings.TrimPrefix(q, src+"/"), Mode: int64(file.mode), ModTime: file.mtime,
			Typeflag: tar.TypeReg, Size: int64(len(file.data)), Uname: "root"}
		switch {
		case file.dir:
			hdr.Typeflag, hdr.Name, hdr.Size = tar.TypeDir, hdr.Name+"/", 0
		case file.link != "":
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeSymlink, file.link, 0
		}
		tw.WriteHeader(hdr)
		tw.Write(file.data)
	}
	tw.Close()
	if !m.put(tmp, &memFile{data: buf.Bytes(), mode: 0o644, mtime: fakeTime}) {
		return 2, "tar: cannot create " + tmp
	}
	return 0, ""
}
