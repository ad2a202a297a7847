package files

import (
	"fmt"
	"path"
	"strings"

	"github.com/sandboxd/sandboxd/internal/errdefs"
)

// maxWatchGlobs bounds the include and exclude patterns of one watch.
const maxWatchGlobs = 64

// watchFilter selects the changes a watch reports, by glob patterns
// matched against paths relative to the watched directory ("src/a.go").
//
// A pattern is made of "/"-separated parts: "**" matches any number of
// path elements (none included), any other part one element as path.Match
// does ("*", "?", "[a-z]", "\\"). A pattern of one part without "/" ("*.go",
// "node_modules") matches an element at any depth; one with "/" is
// anchored at the watched directory ("src/**/*.go", "node_modules/**").
// A pattern matching a directory matches everything under it too.
//
// A path is reported if no exclude pattern matches it and, when there are
// include patterns, one of them does. Excluded directories are not
// watched at all.
type watchFilter struct {
	include, exclude [][]string
}

func newWatchFilter(include, exclude []string) (watchFilter, error) {
	var f watchFilter
	var err error
	if f.include, err = compileGlobs("include", include); err != nil {
		return f, err
	}
	f.exclude, err = compileGlobs("exclude", exclude)
	return f, err
}

func compileGlobs(what string, pats []string) ([][]string, error) {
	if len(pats) > maxWatchGlobs {
		return nil, fmt.Errorf("%w: %d %s patterns, the limit is %d", errdefs.ErrInvalidArgument, len(pats), what, maxWatchGlobs)
	}
	var out [][]string
	for _, p := range pats {
		clean := strings.Trim(strings.TrimPrefix(p, "./"), "/")
		if clean == "" || len(clean) > maxPathLen {
			return nil, fmt.Errorf("%w: %s pattern %q is empty or too long", errdefs.ErrInvalidArgument, what, p)
		}
		var parts []string
		for _, part := range strings.Split(clean, "/") {
			switch {
			case part == "" || part == ".":
				continue
			case part == "**":
				if len(parts) > 0 && parts[len(parts)-1] == "**" {
					continue
				}
			default:
				if _, err := path.Match(part, ""); err != nil {
					return nil, fmt.Errorf("%w: %s pattern %q: %v", errdefs.ErrInvalidArgument, what, p, err)
				}
			}
			parts = append(parts, part)
		}
		if len(parts) == 0 {
			return nil, fmt.Errorf("%w: %s pattern %q matches nothing", errdefs.ErrInvalidArgument, what, p)
		}
		out = append(out, parts)
	}
	return out, nil
}

// allows reports whether changes to rel are reported.
func (f watchFilter) allows(rel string) bool {
	elems := strings.Split(rel, "/")
	if f.matches(f.exclude, elems) {
		return false
	}
	return len(f.include) == 0 || f.matches(f.include, elems)
}

// excluded reports whether rel (a directory) is excluded, so not watched.
func (f watchFilter) excluded(rel string) bool {
	return rel != "" && f.matches(f.exclude, strings.Split(rel, "/"))
}

// matches reports whether one of pats matches elems or a directory above.
func (f watchFilter) matches(pats [][]string, elems []string) bool {
	for _, p := range pats {
		if globMatch(p, elems) {
			return true
		}
	}
	return false
}

// globMatch reports whether pat matches elems or a leading part of them.
func globMatch(pat, elems []string) bool {
	if len(pat) == 1 && pat[0] != "**" {
		for _, e := range elems {
			if ok, _ := path.Match(pat[0], e); ok {
				return true
			}
		}
		return false
	}
	if pat[len(pat)-1] != "**" {
		pat = append(pat[:len(pat):len(pat)], "**") // a match of a directory covers what is under it
	}
	return matchElems(pat, elems)
}

// matchElems reports whether pat matches all of elems, in O(len(pat) *
// len(elems)) steps: next[j] holds whether pat[i+1:] matches elems[j:].
func matchElems(pat, elems []string) bool {
	n := len(elems)
	next, cur := make([]bool, n+1), make([]bool, n+1)
	next[n] = true
	for i := len(pat) - 1; i >= 0; i-- {
		for j := n; j >= 0; j-- {
			switch {
			case pat[i] == "**":
				cur[j] = next[j] || (j < n && cur[j+1])
			case j == n:
				cur[j] = false
			default:
				ok, _ := path.Match(pat[i], elems[j])
				cur[j] = ok && next[j+1]
			}
		}
		next, cur = cur, next
	}
	return next[0]
}
