package cli

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
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

// listFiles is ls of files: args are ID[:PATH] or ID PATH.
func (a *app) listFiles(cmd *cobra.Command, args []string, recursive, hidden, asJSON bool) error {
	id, p, hasPath := strings.Cut(args[0], ":")
	switch {
	case hasPath && len(args) == 2:
		return usagef("name the path as ID:PATH or as ID PATH, not both")
	case len(args) == 2:
		p = args[1]
	}
	files, err := a.client.Get(id).ListFiles(cmd.Context(), cmp.Or(p, "."),
		&sandbox.ListFilesOptions{Recursive: recursive, IncludeHidden: hidden})
	if err != nil {
		return err
	}
	slices.SortFunc(files, func(x, y api.FileInfo) int { return strings.Compare(fileName(x), fileName(y)) })
	if asJSON {
		return writeJSON(a.stdout, append([]api.FileInfo{}, files...)) // [] rather than null
	}
	return writeFileTable(a.stdout, files, time.Local)
}

// writeFileTable writes files as a table, with times in loc.
func writeFileTable(w io.Writer, files []api.FileInfo, loc *time.Location) error {
	return writeList(w, false, files, "NAME\tTYPE\tSIZE\tMODE\tMODIFIED", func(f api.FileInfo) string {
		modified := "-"
		if !f.ModifiedAt.IsZero() {
			modified = f.ModifiedAt.In(loc).Format("2006-01-02 15:04:05")
		}
		return fmt.Sprintf("%s\t%s\t%d\t%s\t%s", fileName(f), f.Type, f.Size, cmp.Or(f.Mode, "-"), modified)
	})
}

// fileName is how a listing names a file: by its path relative to the
// directory listed (which, in a recursive listing, says where it is), with
// a slash after a directory's.
func fileName(f api.FileInfo) string {
	name := cmp.Or(f.RelativePath, f.Name)
	if f.Type == "directory" {
		name += "/"
	}
	return name
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
