package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

func (a *app) logsCmd() *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs ID PROCESS",
		Short: "Print a background process's output",
		Long: `Print what the process has written so far, byte for byte: its stdout to
stdout and its stderr to stderr. With -f, keep printing its output as it
writes it, until it exits.`,
		Example: `  sandbox logs demo web -f`,
		Args:    cobra.ExactArgs(2),
		RunE: a.withClient(func(cmd *cobra.Command, args []string) error {
			sb := a.client.Get(args[0])
			if follow {
				st, err := sb.StreamProcessLogs(cmd.Context(), args[1], "")
				if err != nil {
					return err
				}
				defer st.Close()
				for st.Next() {
					if err := a.writeOutput(st.Event()); err != nil {
						return err
					}
				}
				return st.Err()
			}
			logs, err := sb.GetProcessLogs(cmd.Context(), args[1])
			if err != nil {
				return err
			}
			if _, err := io.WriteString(a.stdout, logs.Stdout); err != nil {
				return err
			}
			if _, err := io.WriteString(a.stderr, logs.Stderr); err != nil {
				return err
			}
			if logs.Truncated {
				fmt.Fprintln(a.stderr, "sandbox: output truncated by the daemon")
			}
			return nil
		}),
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "follow the output until the process exits")
	return cmd
}
