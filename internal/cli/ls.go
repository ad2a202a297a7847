package cli

import (
	"fmt"
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
		RunE: a.withClient(func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				if len(labels) > 0 {
					return usagef("--label filters sandboxes: it does not go with a sandbox ID")
				}
				return a.listFiles(cmd, args, recursive, hidden, asJSON)
			}
			if recursive || hidden {
				return usagef("-R and -a list files: name a sandbox")
			}
			var opts sandbox.ListOptions
			var err error
			if opts.Labels, err = keyValues("label", labels); err != nil {
				return err
			}
			list, err := a.client.List(cmd.Context(), opts)
			if err != nil {
				return err
			}
			now := time.Now()
			// SLEEPS says when an idle sandbox sleeps: after its sleepAfter, or never (keepAlive).
			return writeList(a.stdout, asJSON, list, "ID\tSTATUS\tIMAGE\tCREATED\tLAST ACTIVE\tSLEEPS", func(s api.Sandbox) string {
				sleeps := "after " + s.SleepAfter
				switch {
				case s.KeepAlive:
					sleeps = "never"
				case s.SleepAfter == "":
					sleeps = "-"
				}
				return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", s.ID, s.Status, s.Image, ago(s.CreatedAt, now), ago(s.LastActiveAt, now), sleeps)
			})
		}),
	}
	cmd.Flags().StringArrayVarP(&labels, "label", "l", nil, "only sandboxes with this label, k=v (repeatable)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the list as JSON")
	cmd.Flags().BoolVarP(&recursive, "recursive", "R", false, "list files of the whole tree")
	cmd.Flags().BoolVarP(&hidden, "all", "a", false, "list hidden files too")
	return cmd
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
