package files

import (
	"strings"
	"testing"
)

func TestWatchFilter(t *testing.T) {
	cases := []struct {
		include, exclude []string
		allowed, denied  []string
	}{
		{nil, nil, []string{"a", "a/b/c"}, nil},
		{[]string{"*.go"}, nil, []string{"a.go", "x/y/b.go", "pkg.go/inside"}, []string{"a.txt", "go", "x/a.go.txt"}},
		{nil, []string{"node_modules/**"}, []string{"src/node_modules/x", "a"}, []string{"node_modules", "node_modules/a/b"}},
		{nil, []string{"node_modules"}, []string{"a"}, []string{"node_modules", "x/node_modules/y"}},
		{[]string{"src/**/*.go"}, nil, []string{"src/a.go", "src/x/y/a.go"}, []string{"a.go", "src", "lib/src/a.go"}},
		{[]string{"src"}, []string{"*.tmp"}, []string{"src", "src/a/b"}, []string{"srcs", "src/a.tmp", "src/x.tmp/y"}},
		{[]string{"**"}, nil, []string{"a", "a/b"}, nil},
		{[]string{"./a/", "/b"}, nil, []string{"a", "b/c"}, []string{"c"}},
		{[]string{"**/test/**/x"}, nil, []string{"test/x", "a/test/b/c/x", "test/x/y"}, []string{"x", "test"}},
		{[]string{"[ab]?"}, []string{`\*`}, []string{"a1", "z/b2"}, []string{"c1", "a12", "*"}},
	}
	for _, tc := range cases {
		f, err := newWatchFilter(tc.include, tc.exclude)
		if err != nil {
			t.Fatalf("%v %v: %v", tc.include, tc.exclude, err)
		}
		for _, p := range tc.allowed {
			if !f.allows(p) {
				t.Errorf("include %q exclude %q: %s not allowed", tc.include, tc.exclude, p)
			}
		}
		for _, p := range tc.denied {
			if f.allows(p) {
				t.Errorf("include %q exclude %q: %s allowed", tc.include, tc.exclude, p)
			}
		}
	}
	for _, bad := range []string{"", "/", "[", "a/[b", "./"} {
		if _, err := newWatchFilter([]string{bad}, nil); err == nil {
			t.Errorf("pattern %q accepted", bad)
		}
	}
}

// Matching many "**" against a deep path stays fast.
func TestWatchFilterNoBlowup(t *testing.T) {
	f, err := newWatchFilter([]string{strings.Repeat("**/a/", 30) + "b"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.allows(strings.Repeat("a/", 2000) + "c") {
		t.Error("matched")
	}
}

func FuzzWatchFilter(f *testing.F) {
	f.Add("src/**/*.go", "a/b/c.go")
	f.Add("*", "x")
	f.Add("**/[a-", "a/b")
	f.Fuzz(func(t *testing.T, pat, path string) {
		wf, err := newWatchFilter([]string{pat}, nil)
		if err != nil || path == "" {
			return
		}
		got := wf.allows(path)
		// "**" before a pattern changes nothing for a pattern without "/",
		// and matches whatever the pattern matches otherwise.
		all, err := newWatchFilter([]string{"**/" + pat}, nil)
		if err != nil {
			t.Fatalf("%q accepted, **/%q not: %v", pat, pat, err)
		}
		if got && !all.allows(path) {
			t.Errorf("%q matches %q, **/%q does not", pat, path, pat)
		}
		if ex, _ := newWatchFilter(nil, []string{pat}); ex.allows(path) == got {
			t.Errorf("%q: include %v, exclude %v", path, got, ex.allows(path))
		}
	})
}
