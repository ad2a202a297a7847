package cli

import "strings"

// shellJoin turns the words after "--" into one shell command line for the
// sandbox's shell. A single word is taken as a command line already, so
// `-- 'echo $HOME | wc -c'` runs a pipeline; several words are quoted one by
// one, so each reaches the program exactly as typed.
func shellJoin(words []string) string {
	if len(words) == 1 {
		return words[0]
	}
	quoted := make([]string, len(words))
	for i, w := range words {
		quoted[i] = shellQuote(w)
	}
	return strings.Join(quoted, " ")
}

// shellQuote returns s as one POSIX shell word: unchanged if it is a plain
// word, else in single quotes. '=' is not plain, so a quoted first word is
// never read as a variable assignment.
func shellQuote(s string) string {
	const plain = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+:,./_-"
	if s != "" && strings.Trim(s, plain) == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
