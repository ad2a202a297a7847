package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func (a *app) sessionRmCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rm ID SESSION...",
		Short: "Delete sessions, killing their shells and processes",
		Long: `Delete each session named from the sandbox ID, killing its shell and the
processes started in it, and print its ID once it is gone. The default
session cannot be deleted. A failure to delete one is reported and the rest
are still deleted.`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(cmd)
			if err != nil {
				return err
			}
			sb := c.Get(args[0])
			failed := false
			for _, id := range args[1:] {
				if err := sb.DeleteSession(cmd.Context(), id); err != nil {
					a.printErr(err)
					failed = true
					continue
				}
				fmt.Fprintln(a.stdout, id)
			}
			if failed {
				return exitCode(1)
			}
			return nil
		},
	}
}
