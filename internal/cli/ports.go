package cli

import (
	"fmt"
	"io"
	"text/tabwriter"

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
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(cmd)
			if err != nil {
				return err
			}
			list, err := c.Get(args[0]).GetExposedPorts(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a.stdout, append([]api.ExposedPort{}, list...)) // [] rather than null
			}
			return writePortTable(a.stdout, list)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the list as JSON")
	return cmd
}

func writePortTable(w io.Writer, list []api.ExposedPort) error {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "PORT\tNAME\tURL")
	for _, p := range list {
		name := p.Name
		if name == "" {
			name = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\n", p.Port, name, p.ExposedAt)
	}
	return tw.Flush()
}
