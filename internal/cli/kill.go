package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func (a *app) killCmd() *cobra.Command {
	var (
		signal string
		all    bool
	)
	cmd := &cobra.Command{
		Use:   "kill ID PROCESS... | kill ID --all",
		Short: "Kill background processes",
		Long: `Kill each process named, with its descendants, printing its ID once it has
died: the signal (SIGTERM by default) first, SIGKILL after a grace period. A
failure to kill one is reported and the rest are still killed.

With --all, kill every process of the sandbox and print how many were killed.`,
		Example: `  sandbox kill demo web --signal SIGKILL
  sandbox kill demo --all`,
		Args: cobra.MinimumNArgs(1),
		RunE: a.withClient(func(cmd *cobra.Command, args []string) error {
			switch {
			case all && len(args) > 1:
				return usagef("--all kills every process: name no process")
			case !all && len(args) == 1:
				return usagef("name the processes to kill, or use --all")
			case all && cmd.Flag("signal").Changed:
				return usagef("--all sends SIGTERM: it takes no --signal")
			}
			sb := a.client.Get(args[0])
			if all {
				n, err := sb.KillAllProcesses(cmd.Context())
				if err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, n)
				return nil
			}
			return a.forEach(args[1:], func(id string) (string, error) {
				_, err := sb.KillProcess(cmd.Context(), id, signal)
				return id, err
			})
		}),
	}
	cmd.Flags().StringVarP(&signal, "signal", "s", "", "signal to send, e.g. SIGKILL or SIGINT (default SIGTERM)")
	cmd.Flags().BoolVar(&all, "all", false, "kill every process of the sandbox")
	return cmd
}
