package sandbox_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"

	"github.com/sandboxd/sandboxd/sandbox"
)

// This example opens a terminal in the sandbox "demo", types a command and
// exit, copies everything the terminal shows to stdout, and reports the
// shell's exit status.
func ExampleSandbox_Terminal() {
	ctx := context.Background()
	c, err := sandbox.FromEnv()
	if err != nil {
		log.Fatal(err)
	}
	term, err := c.Get("demo").Terminal(ctx, sandbox.TerminalOptions{Cols: 120, Rows: 40})
	if err != nil {
		log.Fatal(err)
	}
	defer term.Close()
	if _, err := io.WriteString(term, "uname -a; exit 3\n"); err != nil {
		log.Fatal(err)
	}
	if _, err := io.Copy(os.Stdout, term); err != nil { // until the shell exits
		log.Fatal(err)
	}
	code, _ := term.ExitCode()
	fmt.Println("\nexit status", code)
}
