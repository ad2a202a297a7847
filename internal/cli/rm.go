package cli

import "github.com/spf13/cobra"

func (a *app) rmCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rm ID...",
		Short: "Destroy sandboxes with all their processes and files",
		Long: `Destroy each sandbox named, printing its ID once it is gone. A failure to
destroy one is reported and the rest are still destroyed.`,
		Args: cobra.MinimumNArgs(1),
		RunE: a.withClient(func(cmd *cobra.Command, args []string) error {
			return a.forEach(args, func(id string) (string, error) {
				sb := a.client.Get(id)
				return sb.ID(), sb.Destroy(cmd.Context())
			})
		}),
	}
}
