package cli

import "github.com/spf13/cobra"

func (a *app) sessionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "session",
		Short: "Manage a sandbox's sessions",
		Long: `A session is a shell of its own in a sandbox: cd, export and functions carry
from one command to the next in it, and sessions run in parallel. Every
sandbox has a "default" session; run commands in another with
sandbox exec --session.`,
	}
	cmd.AddCommand(a.sessionCreateCmd(), a.sessionLsCmd(), a.sessionRmCmd())
	return cmd
}
