package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/sandboxd/sandboxd/api"
)

func (a *app) sessionCreateCmd() *cobra.Command {
	var (
		req     api.CreateSessionRequest
		env     []string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:     "create ID",
		Short:   "Create a session in a sandbox",
		Long:    `Create a session in the sandbox ID and print the session's ID.`,
		Example: `  sandbox session create demo --id build --cwd /workspace/app --env CI=1`,
		Args:    cobra.ExactArgs(1),
		RunE: a.withClient(func(cmd *cobra.Command, args []string) error {
			var err error
			if req.Env, err = keyValues("env", env); err != nil {
				return err
			}
			if timeout > 0 {
				req.CommandTimeoutMs = int64((timeout + time.Millisecond - 1) / time.Millisecond)
			}
			s, err := a.client.Get(args[0]).CreateSession(cmd.Context(), req)
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, s.ID())
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&req.ID, "id", "", "ID for the session (default: one the daemon chooses)")
	f.StringVarP(&req.Cwd, "cwd", "w", "", "the session's starting directory")
	f.StringArrayVarP(&env, "env", "e", nil, "environment variable for the session, KEY=VALUE (repeatable)")
	f.DurationVar(&timeout, "timeout", 0, "default timeout of the session's commands, e.g. 5m")
	return cmd
}
