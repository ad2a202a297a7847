package cli

import (
	"fmt"
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
		RunE: a.withClient(func(cmd *cobra.Command, args []string) error {
			list, err := a.client.Get(args[0]).ListSessions(cmd.Context())
			if err != nil {
				return err
			}
			now := time.Now()
			return writeList(a.stdout, asJSON, list, "ID\tCWD\tCREATED", func(s api.Session) string {
				return fmt.Sprintf("%s\t%s\t%s", s.ID, s.Cwd, ago(s.CreatedAt, now))
			})
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the list as JSON")
	return cmd
}
