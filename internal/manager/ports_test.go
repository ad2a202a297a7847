package manager

import (
	"strings"
	"testing"
)

func TestNewToken(t *testing.T) {
	seen := map[string]bool{}
	counts := map[rune]int{}
	for range 2000 {
		tok := NewToken()
		if len(tok) != TokenLength || !ValidToken(tok) {
			t.Fatalf("token %q: want %d characters of [a-z0-9_]", tok, TokenLength)
		}
		if seen[tok] {
			t.Fatalf("token %q twice", tok)
		}
		seen[tok] = true
		for _, r := range tok {
			counts[r]++
		}
	}
	// Every letter of the alphabet shows up (32000 draws of 37: about
	// 865 each; a letter never drawn means a broken generator).
	for _, r := range tokenAlphabet {
		if counts[r] < 500 {
			t.Errorf("%q drawn %d times in 32000", r, counts[r])
		}
	}
	for _, bad := range []string{"", "A", "a-b", "a.b", strings.Repeat("a", 17), "é"} {
		if ValidToken(bad) {
			t.Errorf("ValidToken(%q) = true", bad)
		}
	}
}
