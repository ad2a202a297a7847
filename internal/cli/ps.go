package cli

import (
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
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
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(cmd)
			if err != nil {
				return err
			}
			list, err := c.Get(args[0]).ListProcesses(cmd.Context(), status)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a.stdout, append([]api.Process{}, list...)) // [] rather than null
			}
			return writeProcessTable(a.stdout, list, time.Now())
		},
	}
	cmd.Flags().StringVar(&status, "status", "", "only processes with this status: running, completed, failed or killed")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the list as JSON")
	return cmd
}

// writeProcessTable writes list as a table with start times relative to now.
func writeProcessTable(w io.Writer, list []api.Process, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "ID\tPID\tSTATUS\tEXIT\tSTARTED\tCOMMAND")
	for _, p := range list {
		exit := "-"
		if p.ExitCode != nil {
			exit = strconv.Itoa(*p.ExitCode)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", p.ID, p.Pid, p.Status, exit, ago(p.StartTime, now), p.Command)
	}
	return tw.Flush()
}
