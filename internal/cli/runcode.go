package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/sandbox"
)

func (a *app) runCodeCmd() *cobra.Command {
	var (
		opts   sandbox.RunCodeOptions
		outDir string
	)
	cmd := &cobra.Command{
		Use:   "run-code ID [FILE|-]",
		Short: "Run Python, JavaScript or TypeScript in a sandbox's code interpreter",
		Long: `Run the code in FILE (or on stdin, for - or no FILE) in the sandbox ID's code
interpreter, creating the sandbox if it does not exist. Output is printed as it
happens; the value of the last expression is printed after it. Image results
(matplotlib figures, PNG and JPEG displays) are saved as files in --out-dir,
and their names printed. Exits 1 if the code raised an error.

Without --context the code runs in the sandbox's default context of its
language, so state carries from one run-code to the next. The language comes
from --language, else FILE's extension (.py, .js, .mjs, .ts), else python.`,
		Example: `  sandbox run-code demo analysis.py
  echo 'import math; math.pi' | sandbox run-code demo -
  sandbox run-code --language typescript demo script.ts`,
		Args: cobra.RangeArgs(1, 2),
		RunE: a.withClient(func(cmd *cobra.Command, args []string) error {
			file := "-"
			if len(args) == 2 {
				file = args[1]
			}
			var src []byte
			var err error
			if file == "-" {
				src, err = io.ReadAll(a.stdin)
			} else {
				src, err = os.ReadFile(file)
			}
			if err != nil {
				return fmt.Errorf("read code: %w", err)
			}
			if opts.Language == "" && opts.ContextID == "" {
				opts.Language = languageOf(file)
			}
			images := 0
			saveImage := func(b []byte, ext string) error {
				images++
				name := filepath.Join(outDir, fmt.Sprintf("result-%d.%s", images, ext))
				if err := os.WriteFile(name, b, 0o644); err != nil {
					return fmt.Errorf("save image result: %w", err)
				}
				fmt.Fprintf(a.stderr, "[image saved to %s]\n", name)
				return nil
			}
			var saveErr error
			opts.OnStdout = func(s string) { io.WriteString(a.stdout, s) }
			opts.OnStderr = func(s string) { io.WriteString(a.stderr, s) }
			opts.OnResult = func(r sandbox.Result) {
				if b, ok := r.PNGBytes(); ok {
					saveErr = saveImage(b, "png")
				} else if b, ok := r.JPEGBytes(); ok {
					saveErr = saveImage(b, "jpg")
				} else if r.Text != "" {
					fmt.Fprintln(a.stdout, r.Text)
				} else if len(r.Formats()) > 0 {
					fmt.Fprintf(a.stdout, "[result: %s]\n", strings.Join(r.Formats(), ", "))
				}
			}
			opts.OnError = func(e api.ExecutionError) {
				for _, line := range e.Traceback {
					fmt.Fprintln(a.stderr, line)
				}
				if len(e.Traceback) == 0 {
					fmt.Fprintf(a.stderr, "%s: %s\n", e.Name, e.Value)
				}
			}
			res, err := a.client.Get(args[0]).RunCode(cmd.Context(), string(src), &opts)
			if err != nil {
				return err
			}
			if saveErr != nil {
				return saveErr
			}
			if res.ContextReset {
				fmt.Fprintln(a.stderr, "[the context was reset: its state is lost]")
			}
			if !res.Success {
				return exitCode(1)
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVarP(&opts.Language, "language", "l", "", "python, javascript or typescript (default: from FILE's extension, else python)")
	f.StringVarP(&opts.ContextID, "context", "c", "", "code context to run in (default: the language's default context)")
	f.DurationVar(&opts.Timeout, "timeout", 0, "interrupt the run after this long (0: no limit)")
	f.StringVar(&outDir, "out-dir", ".", "directory for image results")
	return cmd
}

// languageOf guesses a file's language from its extension ("" if unknown).
func languageOf(file string) string {
	switch strings.ToLower(filepath.Ext(file)) {
	case ".py":
		return api.LanguagePython
	case ".js", ".mjs", ".cjs":
		return api.LanguageJavaScript
	case ".ts", ".mts", ".cts":
		return api.LanguageTypeScript
	}
	return ""
}
