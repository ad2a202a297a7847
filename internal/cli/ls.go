package cli

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/sandbox"
)

func (a *app) lsCmd() *cobra.Command {
	var (
		labels            []string
		asJSON            bool
		recursive, hidden bool
	)
	cmd := &cobra.Command{
		Use:     "ls [ID[:PATH] | ID PATH]",
		Aliases: []string{"list"},
		Short:   "List sandboxes, or the files of one",
		Long: `Without arguments, list the sandboxes, or with --label those carrying labels.

With a sandbox ID, list the files of a directory in it (PATH, by default its
working directory): name, type, size, permission bits and modification time.
-R lists the whole tree under it, -a includes hidden files.`,
		Example: `  sandbox ls --label team=ml
  sandbox ls demo:/workspace -R
  sandbox ls demo src -a --json`,
		Args: cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				if len(labels) > 0 {
					return usagef("--label filters sandboxes: it does not go with a sandbox ID")
				}
				return a.listFiles(cmd, args, recursive, hidden, asJSON)
			}
			if recursive || hidden {
				return usagef("-R and -a list files: name a sandbox")
			}
			opts := sandbox.ListOptions{}
			var err error
			if opts.Labels, err = keyValues("label", labels); err != nil {
				return err
			}
			c, err := a.client(cmd)
			if err != nil {
				return err
			}
			list, err := c.List(cmd.Context(), opts)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a.stdout, append([]api.Sandbox{}, list...)) // [] rather than null
			}
			return writeTable(a.stdout, list, time.Now())
		},
	}
	cmd.Flags().StringArrayVarP(&labels, "label", "l", nil, "only sandboxes with this label, k=v (repeatable)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the list as JSON")
	cmd.Flags().BoolVarP(&recursive, "recursive", "R", false, "list files of the whole tree")
	cmd.Flags().BoolVarP(&hidden, "all", "a", false, "list hidden files too")
	return cmd
}

// writeTable writes list as a table with times relative to now. SLEEPS
// says when an idle sandbox sleeps: after its sleepAfter, or never
// (keepAlive).
func writeTable(w io.Writer, list []api.Sandbox, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tIMAGE\tCREATED\tLAST ACTIVE\tSLEEPS")
	for _, s := range list {
		sleeps := "after " + s.SleepAfter
		switch {
		case s.KeepAlive:
			sleeps = "never"
		case s.SleepAfter == "":
			sleeps = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Status, s.Image, ago(s.CreatedAt, now), ago(s.LastActiveAt, now), sleeps)
	}
	return tw.Flush()
}

// ago says how long before now t was, in its largest whole unit.
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := max(now.Sub(t), 0)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	default:
		return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
	}
}
