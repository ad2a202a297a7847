package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/sandboxd/sandboxd/sandbox"
)

func (a *app) shellCmd() *cobra.Command {
	var opts sandbox.TerminalOptions
	cmd := &cobra.Command{
		Use:   "shell ID",
		Short: "Open an interactive terminal in a sandbox",
		Long: `Open a terminal in the sandbox: a shell on a PTY, in the session's directory
and environment. When standard input is a terminal it is put in raw mode
(keys, Ctrl-C included, go to the sandbox's shell) and window size changes
follow. The command exits with the shell's exit status.

Closing the connection (killing this command) leaves the shell running for
5 minutes: "sandbox shell" with the same --session and --terminal joins it
again and first shows its latest output. Several may join one terminal.`,
		Example: `  sandbox shell demo
  sandbox shell demo --session build --terminal logs
  echo 'ls; exit' | sandbox shell demo`,
		Args: cobra.ExactArgs(1),
		RunE: a.withClient(func(cmd *cobra.Command, args []string) error {
			return a.runShell(cmd.Context(), a.client.Get(args[0]), opts)
		}),
	}
	f := cmd.Flags()
	f.StringVarP(&opts.SessionID, "session", "s", "", "session whose directory and environment the shell gets (default: the default session)")
	f.StringVarP(&opts.TerminalID, "terminal", "t", "", "terminal to open or join within the session (default \"default\")")
	f.StringVar(&opts.Shell, "shell", "", "absolute path of the shell for a new terminal (default /bin/bash)")
	return cmd
}

// runShell connects the terminal to the app's standard streams until the
// shell exits, and returns its status as an exitCode.
func (a *app) runShell(ctx context.Context, sb *sandbox.Sandbox, opts sandbox.TerminalOptions) error {
	inFd, sizeFd := termFd(a.stdin), termFd(a.stdout)
	if sizeFd < 0 {
		sizeFd = inFd
	}
	if sizeFd >= 0 {
		if w, h, err := term.GetSize(sizeFd); err == nil {
			opts.Cols, opts.Rows = w, h
		}
	}
	t, err := sb.Terminal(ctx, opts)
	if err != nil {
		return err
	}
	defer t.Close()

	if inFd >= 0 {
		state, err := term.MakeRaw(inFd)
		if err != nil {
			return fmt.Errorf("raw mode: %w", err)
		}
		defer term.Restore(inFd, state)
	}
	if sizeFd >= 0 {
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, unix.SIGWINCH)
		defer func() { signal.Stop(winch); close(winch) }() // ends the goroutine
		go func() {
			for range winch {
				if w, h, err := term.GetSize(sizeFd); err == nil {
					_ = t.Resize(ctx, w, h) // returns once t is closed, at the latest
				}
			}
		}()
	}
	// Keys to the shell. A pipe's end of input is simply the end of
	// typing: the shell decides when to exit. This goroutine ends when
	// input does; else it stays blocked in a read until the program exits,
	// which Main's caller does once it returns.
	go func() { _, _ = io.Copy(t, a.stdin) }()
	stop := context.AfterFunc(ctx, func() { t.Close() })
	defer stop()

	_, err = io.Copy(a.stdout, t)
	if code, ok := t.ExitCode(); ok {
		return exitCode(code)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err == nil || errors.Is(err, sandbox.ErrTerminalClosed) {
		err = errors.New("the terminal's connection ended before its shell exited")
	}
	return err
}

// termFd returns the file descriptor of v if it is a terminal's file, else -1.
func termFd(v any) int {
	if f, ok := v.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return int(f.Fd())
	}
	return -1
}
