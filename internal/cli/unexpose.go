package cli

import (
	"github.com/spf13/cobra"
)

func (a *app) unexposeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "unexpose ID PORT",
		Short: "Remove a port's preview URL",
		Long: `Remove the preview URL of PORT of the sandbox ID: it answers 404 from then
on. Unexposing a port that is not exposed succeeds.`,
		Example: `  sandbox unexpose demo 8000`,
		Args:    cobra.ExactArgs(2),
		RunE: a.withClient(func(cmd *cobra.Command, args []string) error {
			port, err := parsePort(args[1])
			if err != nil {
				return err
			}
			return a.client.Get(args[0]).UnexposePort(cmd.Context(), port)
		}),
	}
}
