package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sandboxd/sandboxd/sandbox"
)

func (a *app) startCmd() *cobra.Command {
	var (
		opts sandbox.ProcessOptions
		env  []string
	)
	cmd := &cobra.Command{
		Use:   "start ID -- COMMAND [ARG...]",
		Short: "Start a background process in a sandbox",
		Long: `Start a command in the background in the sandbox ID, creating the sandbox if
it does not exist, and print the process's ID once it runs. Follow it with
sandbox logs, ps and kill.

The words after -- are taken as for sandbox exec.`,
		Example: `  sandbox start demo --id web -- python3 -m http.server 8080
  sandbox logs demo web -f`,
		Args: cobra.MinimumNArgs(2),
		RunE: a.withClient(func(cmd *cobra.Command, args []string) error {
			var err error
			if opts.Env, err = keyValues("env", env); err != nil {
				return err
			}
			p, err := a.client.Get(args[0]).StartProcess(cmd.Context(), shellJoin(args[1:]), &opts)
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, p.ID())
			return nil
		}),
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return fmt.Errorf("%w (put the command after --)", err)
	})
	f := cmd.Flags()
	f.StringVar(&opts.ID, "id", "", "ID for the process (default: one the daemon chooses)")
	f.StringArrayVarP(&env, "env", "e", nil, "set an environment variable for the process, KEY=VALUE (repeatable)")
	f.StringVarP(&opts.Cwd, "cwd", "w", "", "directory to start the process in")
	f.StringVar(&opts.SessionID, "session", "", "session to start the process in (default: the sandbox's default session)")
	f.DurationVar(&opts.Timeout, "timeout", 0, "kill the process after this long, e.g. 1h")
	return cmd
}
