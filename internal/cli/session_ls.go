package cli

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sandboxd/sandboxd/api"
)

func (a *app) sessionLsCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "ls ID",
		Aliases: []string{"list"},
		Short:   "List a sandbox's sessions",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(cmd)
			if err != nil {
				return err
			}
			list, err := c.Get(args[0]).ListSessions(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a.stdout, append([]api.Session{}, list...)) // [] rather than null
			}
			return writeSessionTable(a.stdout, list, time.Now())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the list as JSON")
	return cmd
}

// writeSessionTable writes list as a table with times relative to now.
func writeSessionTable(w io.Writer, list []api.Session, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "ID\tCWD\tCREATED")
	for _, s := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.ID, s.Cwd, ago(s.CreatedAt, now))
	}
	return tw.Flush()
}
