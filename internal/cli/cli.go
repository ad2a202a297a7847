// Package cli implements the sandbox command line, a thin shell over the Go
// SDK (package github.com/sandboxd/sandboxd/sandbox). Each subcommand lives in
// its own file; Main runs one command line and returns its exit status.
//
// Exit statuses: 0 on success; for exec, the command's own exit code (or
// the status of the session shell it made exit); 1 when the daemon or the
// network reports an error, printed as "sandbox: <message> (<CODE>)"; 2 for
// usage errors; 130 when interrupted.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/sandboxd/sandboxd/sandbox"
)

// Main runs the command line args (without the program name) with the given
// standard streams and returns the exit status. Cancelling ctx, as on
// Ctrl-C, cancels the running request.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv}
	return a.run(ctx, args)
}

// app holds what one run of the command line uses: its streams, its
// environment and the global flags.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string

	url, token, tokenFile string // global flags

	client *sandbox.Client // the daemon's, set by withClient

	// parsed is set once cobra has accepted the command line, so errors after
	// it are failures rather than usage errors.
	parsed bool
}

func (a *app) run(ctx context.Context, args []string) int {
	root := a.rootCmd()
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	return a.exitStatus(ctx, cmd, err)
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "sandbox",
		Short: "Run commands in Sandboxd sandboxes",
		Long: `sandbox drives a Sandboxd daemon: it creates, lists and destroys sandboxes,
runs commands in them, starts, follows and kills background processes, and
copies, lists and watches their files.

The daemon's address comes from --url, else $SANDBOX_URL, else ` + sandbox.DefaultURL + `.
The API token comes from --token, else $SANDBOX_TOKEN, else the --token-file.`,
		SilenceErrors:    true,
		SilenceUsage:     true,
		PersistentPreRun: func(*cobra.Command, []string) { a.parsed = true },
	}
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	f := root.PersistentFlags()
	f.StringVar(&a.url, "url", "", "daemon URL (default $SANDBOX_URL or "+sandbox.DefaultURL+")")
	f.StringVar(&a.token, "token", "", "API token (default $SANDBOX_TOKEN, else read from --token-file)")
	f.StringVar(&a.tokenFile, "token-file", sandbox.DefaultTokenFile, "file holding the API token")
	root.AddCommand(a.execCmd(), a.lsCmd(), a.infoCmd(), a.rmCmd(), a.createCmd(),
		a.startCmd(), a.psCmd(), a.logsCmd(), a.killCmd(), a.sessionCmd(),
		a.cpCmd(), a.catCmd(), a.watchCmd(), a.shellCmd(), a.runCodeCmd(),
		a.exposeCmd(), a.unexposeCmd(), a.portsCmd())
	return root
}

// exitStatus reports err, if any, on stderr and returns the exit status it
// calls for. cmd is the command that ran or failed to parse.
func (a *app) exitStatus(ctx context.Context, cmd *cobra.Command, err error) int {
	var code exitCode
	var usage usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &code):
		if code < 0 || code > 255 {
			return 255
		}
		return int(code)
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return 130
	case !a.parsed || errors.As(err, &usage):
		fmt.Fprintf(a.stderr, "sandbox: %v\nRun '%s --help' for usage.\n", err, cmd.CommandPath())
		return 2
	default:
		a.printErr(err)
		return 1
	}
}

// printErr prints err on stderr: a daemon error as its message and code, any
// other error as it is.
func (a *app) printErr(err error) {
	var e *sandbox.Error
	if errors.As(err, &e) {
		fmt.Fprintf(a.stderr, "sandbox: %s (%s)\n", e.Message, e.Code)
		return
	}
	fmt.Fprintf(a.stderr, "sandbox: %v\n", err)
}

// forEach calls do with each of ids, printing on stdout the name each
// success returns and reporting each failure on stderr. It returns
// exitCode(1) if any failed, else exitCode(0).
func (a *app) forEach(ids []string, do func(id string) (string, error)) error {
	status := 0
	for _, id := range ids {
		name, err := do(id)
		if err != nil {
			a.printErr(err)
			status = 1
			continue
		}
		fmt.Fprintln(a.stdout, name)
	}
	return exitCode(status)
}

// exitCode is returned by a command that has reported everything it had to
// and wants the program to exit with this status, be it 0.
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit status %d", int(c)) }

// usageError is a command line the command cannot act on.
type usageError struct{ error }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}
