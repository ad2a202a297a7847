package cli

import (
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
