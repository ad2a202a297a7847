package files

import (
	"strings"
	"testing"
)

func TestParseGitSource(t *testing.T) {
	for _, tc := range []struct {
		raw, url, name, user, password, host string
		secrets                              []string
	}{
		{raw: "https://github.com/org/repo.git", url: "https://github.com/org/repo.git", name: "repo"},
		{raw: "https://github.com/org/repo/", url: "https://github.com/org/repo/", name: "repo"},
		{raw: "https://u:tok@git.example.com:8443/a/b.git", url: "https://git.example.com:8443/a/b.git", name: "b",
			user: "u", password: "tok", host: "git.example.com:8443", secrets: []string{"tok"}},
		{raw: "https://ghp_abcdefgh12345678@github.com/o/r", url: "https://github.com/o/r", name: "r",
			user: "ghp_abcdefgh12345678", host: "github.com", secrets: []string{"ghp_abcdefgh12345678"}},
		{raw: "https://me@host/r.git", url: "https://host/r.git", name: "r", user: "me", host: "host"},
		{raw: "ssh://git:pw@host/r.git", url: "ssh://git@host/r.git", name: "r"},
		{raw: "file://u:p@/srv/r.git", url: "file:///srv/r.git", name: "r"},
		{raw: "git@github.com:org/proj.git", url: "git@github.com:org/proj.git", name: "proj"},
		{raw: "/srv/repo.git", url: "/srv/repo.git", name: "repo"},
		{raw: "../rel/repo", url: "../rel/repo", name: "repo"},
		{raw: "file:///", url: "file:///", name: ""},
	} {
		src, err := parseGitSource(tc.raw)
		if err != nil {
			t.Errorf("%s: %v", tc.raw, err)
			continue
		}
		if src.url != tc.url || src.name != tc.name || src.user != tc.user ||
			src.password != tc.password || src.host != tc.host || strings.Join(src.secrets(), ",") != strings.Join(tc.secrets, ",") {
			t.Errorf("%s: %+v (secrets %q)", tc.raw, src, src.secrets())
		}
	}
	for _, raw := range []string{"", "-u", "https://h/r\n", "ftp://h/r", "http://[::1", "https://u:p@h/r\x00", "http://:p@/r"} {
		if _, err := parseGitSource(raw); err == nil {
			t.Errorf("%q accepted", raw)
		} else if strings.Contains(err.Error(), "p@") {
			t.Errorf("%q: the error quotes the URL: %v", raw, err)
		}
	}
}

// Whatever the URL, what is shown of it holds no password.
func FuzzParseGitSource(f *testing.F) {
	f.Add("https://user:secret-token@host/r.git")
	f.Add("http://a:b@c")
	f.Add("http://:0@")
	f.Fuzz(func(t *testing.T, raw string) {
		src, err := parseGitSource(raw)
		if err != nil || src.password == "" {
			return
		}
		if strings.Contains(src.url, ":"+src.password+"@") {
			t.Errorf("%q: shown as %q", raw, src.url)
		}
		if src.host == "" {
			t.Errorf("%q: credentials for no host", raw)
		}
	})
}
