package cli

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sandboxd/sandboxd/sandbox"
)

func TestOptionsPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte(" file-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	env := map[string]string{sandbox.EnvURL: "http://env:1", sandbox.EnvToken: "env-token"}
	tests := []struct {
		name             string
		url, token, file string
		fileSet          bool
		env              map[string]string
		want             sandbox.Options
		wantErr          bool
	}{
		{name: "flags beat env", url: "http://flag:1", token: "flag-token", file: file, env: env,
			want: sandbox.Options{URL: "http://flag:1", Token: "flag-token"}},
		{name: "env beats file", file: file, env: env,
			want: sandbox.Options{URL: "http://env:1", Token: "env-token"}},
		{name: "file when no flag or env", file: file,
			want: sandbox.Options{Token: "file-token"}},
		{name: "named file when no flag or env", file: file, fileSet: true,
			want: sandbox.Options{Token: "file-token"}},
		{name: "flag token skips a bad named file", token: "flag-token", file: missing, fileSet: true,
			want: sandbox.Options{Token: "flag-token"}},
		{name: "missing default file means no token", file: missing,
			want: sandbox.Options{}},
		{name: "missing named file is an error", file: missing, fileSet: true, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := &app{url: tc.url, token: tc.token, tokenFile: tc.file, getenv: func(k string) string { return tc.env[k] }}
			got, err := a.options(tc.fileSet)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("options() = %+v, %v; want %+v, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}
