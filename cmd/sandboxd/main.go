// Command sandboxd is the Sandboxd daemon: it serves the sandbox API and
// runs sandboxes. See package internal/daemon.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/sandboxd/sandboxd/internal/daemon"
)

func main() {
	var cfg daemon.Config
	flag.StringVar(&cfg.Listen, "listen", "127.0.0.1:8787", "API listen address")
	flag.StringVar(&cfg.DataDir, "data-dir", "/var/lib/sandboxd", "state, sandboxes' files and the token file")
	flag.StringVar(&cfg.ImagesDir, "images-dir", "", "images directory (default DATA-DIR/images)")
	flag.StringVar(&cfg.Token, "token", os.Getenv("SANDBOXD_TOKEN"), "API token (env SANDBOXD_TOKEN; default: generated once into DATA-DIR/token)")
	flag.StringVar(&cfg.PreviewDomain, "preview-domain", "localhost", "domain of preview URLs")
	flag.StringVar(&cfg.AgentBinary, "agent", "", "sandbox-agent binary (default: beside sandboxd)")
	flag.StringVar(&cfg.Runc, "runc", "runc", "runc binary")
	flag.IntVar(&cfg.MaxOutputBytes, "max-output-bytes", 16<<20, "in-memory cap of each exec output stream")
	flag.IntVar(&cfg.MaxSandboxes, "max-sandboxes", 1000, "most sandboxes at once (more: 429)")
	flag.Parse()
	cfg.Out = os.Stdout

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := daemon.Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "sandboxd:", err)
		os.Exit(1)
	}
}
