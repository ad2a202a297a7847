package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sandboxd/sandboxd/sandbox"
)

func (a *app) watchCmd() *cobra.Command {
	var (
		opts   sandbox.WatchOptions
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "watch ID PATH",
		Short: "Print changes to files of a sandbox as they happen",
		Long: `Watch a directory (or a file) of the sandbox ID and print each change as it
happens, one a line: the kind of change (create, modify, delete, move or
overflow, when changes were dropped), then the path, with a slash after a
directory's; a move prints "OLD -> NEW". With --json, each change is printed
as a JSON object. It runs until interrupted.`,
		Example: `  sandbox watch demo /workspace -r --exclude node_modules
  sandbox watch demo src --include '*.go' --json`,
		Args: cobra.ExactArgs(2),
		RunE: a.withClient(func(cmd *cobra.Command, args []string) error {
			st, err := a.client.Get(args[0]).Watch(cmd.Context(), args[1], &opts)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(a.stdout)
			enc.SetEscapeHTML(false)
			for ev, err := range st.Events() {
				switch {
				case err != nil:
					return err
				case asJSON:
					err = enc.Encode(ev)
				case ev.OldPath != "":
					_, err = fmt.Fprintf(a.stdout, "%s %s -> %s\n", ev.EventType, dirSlash(ev.OldPath, ev.IsDirectory), dirSlash(ev.Path, ev.IsDirectory))
				default:
					_, err = fmt.Fprintf(a.stdout, "%s %s\n", ev.EventType, dirSlash(ev.Path, ev.IsDirectory))
				}
				if err != nil {
					return err
				}
			}
			// The watch ends quietly when interrupted: say so in the status.
			return cmd.Context().Err()
		}),
	}
	f := cmd.Flags()
	f.BoolVarP(&opts.Recursive, "recursive", "r", false, "watch the whole tree under PATH")
	f.StringArrayVar(&opts.Include, "include", nil, "only paths matching this glob pattern (repeatable)")
	f.StringArrayVar(&opts.Exclude, "exclude", nil, "not paths matching this glob pattern (repeatable)")
	f.BoolVar(&asJSON, "json", false, "print each change as a JSON object")
	return cmd
}

// dirSlash returns p with a slash after it if it is a directory's.
func dirSlash(p string, dir bool) string {
	if dir && p != "" && p[len(p)-1] != '/' {
		return p + "/"
	}
	return p
}
