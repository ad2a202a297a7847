package files

import (
	"fmt"
	"os"
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
