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
