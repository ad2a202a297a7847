package files

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

// A listing past its cap fails whole, recursive or not (the handler's cap
// is maxListEntries; a small one here keeps the test fast).
func TestListFilesCap(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(dir+"/d", 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := os.WriteFile(fmt.Sprintf("%s/d/%d", dir, i), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		recursive bool
		limit     int
		ok        bool
	}{{false, 1, true}, {false, 0, false}, {true, 11, true}, {true, 10, false}} {
		files, err := listFiles(dir, tc.recursive, false, tc.limit)
		if tc.ok && (err != nil || len(files) != tc.limit) {
			t.Errorf("%+v: %d files, %v", tc, len(files), err)
		}
		if !tc.ok && (errdefs.Code(err) != api.CodeResourceExhausted || files != nil) {
			t.Errorf("%+v: %d files, %v", tc, len(files), err)
		}
	}
}

// A link to a directory lists the directory, recursive or not, with paths
// through the link; a directory inside is listed, not entered, without
// recursive.
func TestListFilesThroughLink(t *testing.T) {
	dir := t.TempDir()
	for _, err := range []error{os.MkdirAll(dir+"/real/sub", 0o755), os.WriteFile(dir+"/real/sub/f", nil, 0o644),
		os.Symlink(dir+"/real", dir+"/link")} {
		if err != nil {
			t.Fatal(err)
		}
	}
	for recursive, want := range map[bool]string{false: "sub", true: "sub sub/f"} {
		files, err := listFiles(dir+"/link", recursive, false, 10)
		var got []string
		for _, f := range files {
			got = append(got, f.RelativePath)
			if f.AbsolutePath != dir+"/link/"+f.RelativePath {
				t.Errorf("recursive %v: %s at %s", recursive, f.RelativePath, f.AbsolutePath)
			}
		}
		if err != nil || strings.Join(got, " ") != want {
			t.Errorf("recursive %v: %q, %v; want %q", recursive, got, err, want)
		}
	}
}
