package cli

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/sandboxd/sandboxd/api"
)

func (a *app) psCmd() *cobra.Command {
	var (
		status string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "ps ID",
		Short: "List a sandbox's background processes",
		Long: `List the background processes of the sandbox ID, in every session, with
their status and exit code.`,
		Example: `  sandbox ps demo --status running`,
		Args:    cobra.ExactArgs(1),
		RunE: a.withClient(func(cmd *cobra.Command, args []string) error {
			list, err := a.client.Get(args[0]).ListProcesses(cmd.Context(), status)
			if err != nil {
				return err
			}
			now := time.Now()
			return writeList(a.stdout, asJSON, list, "ID\tPID\tSTATUS\tEXIT\tSTARTED\tCOMMAND", func(p api.Process) string {
				exit := "-"
				if p.ExitCode != nil {
					exit = strconv.Itoa(*p.ExitCode)
				}
				return fmt.Sprintf("%s\t%d\t%s\t%s\t%s\t%s", p.ID, p.Pid, p.Status, exit, ago(p.StartTime, now), p.Command)
			})
		}),
	}
	cmd.Flags().StringVar(&status, "status", "", "only processes with this status: running, completed, failed or killed")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the list as JSON")
	return cmd
}
