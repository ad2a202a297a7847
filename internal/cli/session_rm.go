package cli

import "github.com/spf13/cobra"

func (a *app) sessionRmCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rm ID SESSION...",
		Short: "Delete sessions, killing their shells and processes",
		Long: `Delete each session named from the sandbox ID, killing its shell and the
processes started in it, and print its ID once it is gone. The default
session cannot be deleted. A failure to delete one is reported and the rest
are still deleted.`,
		Args: cobra.MinimumNArgs(2),
		RunE: a.withClient(func(cmd *cobra.Command, args []string) error {
			sb := a.client.Get(args[0])
			return a.forEach(args[1:], func(id string) (string, error) {
				return id, sb.DeleteSession(cmd.Context(), id)
			})
		}),
	}
}
