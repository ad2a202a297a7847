package cli

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestShellJoin(t *testing.T) {
	tests := []struct {
		words []string
		want  string
	}{
		{[]string{"echo $HOME | wc -c"}, "echo $HOME | wc -c"},
		{[]string{""}, ""},
		{[]string{"ls", "-la", "/tmp/a-b_c.txt"}, "ls -la /tmp/a-b_c.txt"},
		{[]string{"python3", "-c", "import pandas; print(pandas.__version__)"},
			"python3 -c 'import pandas; print(pandas.__version__)'"},
		{[]string{"echo", "$HOME"}, "echo '$HOME'"},
		{[]string{"echo", "it's"}, `echo 'it'\''s'`},
		{[]string{"echo", `"quoted"`}, `echo '"quoted"'`},
		{[]string{"echo", ""}, "echo ''"},
		{[]string{"echo", "a b", "c\td"}, "echo 'a b' 'c\td'"},
		{[]string{"echo", "héllo", "日本"}, "echo 'héllo' '日本'"},
		{[]string{"echo", "*", "~", "a;b", "`x`", "!"}, "echo '*' '~' 'a;b' '`x`' '!'"},
		{[]string{"A=1", "env"}, "'A=1' env"},
		{[]string{"curl", "-u", "me:pw", "https://h/p?q=1&r=2"}, "curl -u me:pw 'https://h/p?q=1&r=2'"},
		{[]string{"printf", "%s\n", "x"}, "printf '%s\n' x"},
	}
	for _, tc := range tests {
		if got := shellJoin(tc.words); got != tc.want {
			t.Errorf("shellJoin(%q) = %q, want %q", tc.words, got, tc.want)
		}
	}
}

// FuzzShellQuote checks, with a real shell, that a quoted word reaches a
// program unchanged.
func FuzzShellQuote(f *testing.F) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		f.Skip("no sh:", err)
	}
	for _, s := range []string{"", "plain", "it's", "a b", "$HOME", "`id`", "\\", "'\"'", "a\nb", "日本", "-n", "A=1", "*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.ContainsAny(s, "\x00\x1f") {
			t.Skip("NUL cannot be in an argument; \\x1f separates the output")
		}
		words := []string{"printf", "%s\x1f", s, "x"}
		out, err := exec.Command(sh, "-c", shellJoin(words)).Output()
		if err != nil {
			t.Fatalf("sh -c %q: %v", shellJoin(words), err)
		}
		if got := strings.Split(string(out), "\x1f"); !slices.Equal(got, []string{s, "x", ""}) {
			t.Errorf("word %q came back as %q", s, got)
		}
	})
}
