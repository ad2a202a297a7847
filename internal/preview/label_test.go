package preview

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/sandboxd/sandboxd/internal/manager"
)

func TestParseLabel(t *testing.T) {
	tests := []struct {
		label       string
		port        int
		id, token   string
		errContains string
	}{
		{label: "8080-demo-abc", port: 8080, id: "demo", token: "abc"},
		{label: "8080-my-long-id-tok_1", port: 8080, id: "my-long-id", token: "tok_1"},
		{label: "1024-a-x", port: 1024, id: "a", token: "x"},
		{label: "65535-0-0123456789abcdef", port: 65535, id: "0", token: "0123456789abcdef"},
		{label: "8080-demo", errContains: "want"},
		{label: "8080--abc", errContains: "want"},
		{label: "demo-abc", errContains: "want"},
		{label: "x8080-demo-abc", errContains: "port"},
		{label: "08080-demo-abc", errContains: "port"},
		{label: "0-demo-abc", errContains: "port"},
		{label: "65536-demo-abc", errContains: "port"},
		{label: "8080-demo--abc", errContains: "sandbox id"},
		{label: "8080-de_mo-abc", errContains: "sandbox id"},
		{label: "8080-demo-", errContains: "want"},
		{label: "8080-demo-0123456789abcdefg", errContains: "token"},
		{label: "8080-demo-a.b", errContains: "token"},
	}
	for _, tc := range tests {
		port, id, token, err := parseLabel(tc.label)
		if tc.errContains != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errContains) {
				t.Errorf("%q: err %v, want one about %q", tc.label, err, tc.errContains)
			}
			continue
		}
		if err != nil || port != tc.port || id != tc.id || token != tc.token {
			t.Errorf("%q: %d %q %q %v, want %d %q %q", tc.label, port, id, token, err, tc.port, tc.id, tc.token)
		}
	}
}

// FuzzParseLabel: any label either fails or names exactly the host
// it came from (hosts are case-insensitive: the ID comes out lowercased).
func FuzzParseLabel(f *testing.F) {
	for _, s := range []string{"8080-demo-abc", "1-a-b", "8080-a-b-c-d", "--", "9-\x00-x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, label string) {
		port, id, token, err := parseLabel(label)
		if err != nil {
			return
		}
		if got := strconv.Itoa(port) + "-" + id + "-" + token; got != strings.ToLower(label) {
			t.Errorf("%q parsed as %q", label, got)
		}
	})
}

// FuzzValidID: validID agrees with manager.NormalizeID on
// lower-case IDs, and ValidToken with its rule.
func FuzzValidID(f *testing.F) {
	for _, s := range []string{"a", "demo", "-a", "a-", "a--b", strings.Repeat("a", 63), strings.Repeat("a", 64), "A", "a_b", "é"} {
		f.Add(s)
	}
	token := regexp.MustCompile(`^[a-z0-9_]{1,16}$`)
	f.Fuzz(func(t *testing.T, s string) {
		if s == strings.ToLower(s) {
			_, err := manager.NormalizeID(s)
			if got := validID(s); got != (err == nil) {
				t.Errorf("validID(%q) = %v; NormalizeID: %v", s, got, err)
			}
		}
		if got, want := manager.ValidToken(s), token.MatchString(s); got != want {
			t.Errorf("ValidToken(%q) = %v, want %v", s, got, want)
		}
	})
}
