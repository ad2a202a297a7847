// Command sandbox-agent runs as PID 1 inside every sandbox and serves the
// daemon over a Unix socket. See package internal/agent.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/sandboxd/sandboxd/internal/agent"
)

func main() {
	var cfg agent.Config
	flag.IntVar(&cfg.ListenFD, "listen-fd", 3, "inherited listening socket to serve on")
	flag.StringVar(&cfg.Socket, "socket", "", "Unix socket path to listen on instead of -listen-fd")
	flag.StringVar(&cfg.Workdir, "workdir", "", "default working directory of commands, created if missing (default: the current one)")
	version := flag.Bool("version", false, "print the version and protocol and exit")
	flag.Parse()
	if *version {
		fmt.Printf("sandbox-agent %s (protocol %d)\n", agent.Version, agent.ProtocolVersion)
		return
	}
	if err := agent.Run(context.Background(), cfg); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox-agent:", err)
		os.Exit(1)
	}
}
