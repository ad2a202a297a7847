package cli

import (
	"cmp"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sandboxd/sandboxd/api"
)

func (a *app) portsCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "ports ID",
		Short:   "List a sandbox's exposed ports",
		Long:    `List the exposed ports of the sandbox ID with their names and preview URLs.`,
		Example: `  sandbox ports demo`,
		Args:    cobra.ExactArgs(1),
		RunE: a.withClient(func(cmd *cobra.Command, args []string) error {
			list, err := a.client.Get(args[0]).GetExposedPorts(cmd.Context())
			if err != nil {
				return err
			}
			return writeList(a.stdout, asJSON, list, "PORT\tNAME\tURL", func(p api.ExposedPort) string {
				return fmt.Sprintf("%d\t%s\t%s", p.Port, cmp.Or(p.Name, "-"), p.ExposedAt)
			})
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the list as JSON")
	return cmd
}
