package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/sandbox"
)

// writeOutput copies the output an event carries, byte for byte, to the
// stream it came from: stdout events to stdout, stderr events to stderr.
// Other events write nothing.
func (a *app) writeOutput(ev sandbox.Event) error {
	var err error
	switch ev.Type {
	case api.EventStdout:
		_, err = a.stdout.Write(ev.Data)
	case api.EventStderr:
		_, err = a.stderr.Write(ev.Data)
	}
	return err
}

// writeJSON writes v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// writeList writes list as a JSON array if asJSON (an empty one rather
// than null), else as a table: header, then row's line for each item, their
// tab-separated columns aligned.
func writeList[T any](w io.Writer, asJSON bool, list []T, header string, row func(T) string) error {
	if asJSON {
		return writeJSON(w, append([]T{}, list...))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, x := range list {
		fmt.Fprintln(tw, row(x))
	}
	return tw.Flush()
}
