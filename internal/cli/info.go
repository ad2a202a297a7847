package cli

import "github.com/spf13/cobra"

func (a *app) infoCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "info ID",
		Short: "Print a sandbox's description as JSON",
		Args:  cobra.ExactArgs(1),
		RunE: a.withClient(func(cmd *cobra.Command, args []string) error {
			info, err := a.client.Get(args[0]).Info(cmd.Context())
			if err != nil {
				return err
			}
			return writeJSON(a.stdout, info)
		}),
	}
}
