package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/sandbox"
)

func (a *app) execCmd() *cobra.Command {
	var (
		opts  sandbox.ExecOptions
		env   []string
		stdin bool
	)
	cmd := &cobra.Command{
		Use:   "exec ID -- COMMAND [ARG...]",
		Short: "Run a command in a sandbox",
		Long: `Run a command in the sandbox ID, creating the sandbox if it does not exist,
and exit with the command's exit code. Its output is streamed as the command
writes it, byte for byte, to this program's stdout and stderr.

Several words after -- are quoted for the sandbox's shell, so they reach the
program unchanged. A single word is run as a shell command line, so pipes,
variables and redirections in it work.`,
		Example: `  sandbox exec demo -- python3 -c 'print(2+2)'
  sandbox exec demo -- 'echo $HOME | wc -c'
  echo hello | sandbox exec --stdin demo -- tr a-z A-Z`,
		Args: cobra.MinimumNArgs(2),
		RunE: a.withClient(func(cmd *cobra.Command, args []string) error {
			var err error
			if opts.Env, err = keyValues("env", env); err != nil {
				return err
			}
			if stdin {
				b, err := io.ReadAll(a.stdin)
				if err != nil {
					return fmt.Errorf("read stdin: %w", err)
				}
				opts.Stdin = new(string(b))
			}
			st, err := a.client.Get(args[0]).ExecStream(cmd.Context(), shellJoin(args[1:]), &opts)
			if err != nil {
				return a.shellExit(err)
			}
			code := 0
			for ev, err := range st.Events() {
				if err != nil {
					return a.shellExit(err)
				}
				if ev.Type == api.EventComplete {
					code = ev.ExitCode
				}
				if err := a.writeOutput(ev); err != nil {
					return err
				}
			}
			return exitCode(code)
		}),
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return fmt.Errorf("%w (put the command after --)", err)
	})
	f := cmd.Flags()
	f.StringArrayVarP(&env, "env", "e", nil, "set an environment variable for this command, KEY=VALUE (repeatable)")
	f.StringVarP(&opts.Cwd, "cwd", "w", "", "directory to run the command in")
	f.DurationVar(&opts.Timeout, "timeout", 0, "kill the command after this long, e.g. 30s (exit code 124)")
	f.StringVar(&opts.SessionID, "session", "", "session whose shell runs the command (default: the sandbox's default session)")
	f.BoolVarP(&stdin, "stdin", "i", false, "send this program's standard input to the command")
	return cmd
}

// shellExit turns the error of a command that made its session's shell exit
// (`exit 3`) into that exit status, after reporting it; other errors are
// returned as they are. The error can come before the stream (a 410
// response) or end it (an error event).
func (a *app) shellExit(err error) error {
	var e *sandbox.Error
	if !errors.Is(err, sandbox.ErrSessionTerminated) || !errors.As(err, &e) {
		return err
	}
	if code, ok := e.ExitCode(); ok {
		a.printErr(err)
		return exitCode(code)
	}
	return err
}
