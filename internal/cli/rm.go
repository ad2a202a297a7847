package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func (a *app) rmCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rm ID...",
		Short: "Destroy sandboxes with all their processes and files",
		Long: `Destroy each sandbox named, printing its ID once it is gone. A failure to
destroy one is reported and the rest are still destroyed.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(cmd)
			if err != nil {
				return err
			}
			failed := false
			for _, id := range args {
				sb := c.Get(id)
				if err := sb.Destroy(cmd.Context()); err != nil {
					a.printErr(err)
					failed = true
					continue
				}
				fmt.Fprintln(a.stdout, sb.ID())
			}
			if failed {
				return exitCode(1)
			}
			return nil
		},
	}
}
