// Command sandbox-agent runs as PID 1 inside every sandbox and serves the
// daemon over a Unix socket. See package internal/agent.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/sandboxd/sandboxd/internal/agent"
	"github.com/sandboxd/sandboxd/internal/agentapi"
)

func main() {
	var cfg agent.Config
	flag.IntVar(&cfg.ListenFD, "listen-fd", 3, "inherited listening socket to serve on")
	flag.StringVar(&cfg.Socket, "socket", "", "Unix socket path to listen on instead of -listen-fd")
	flag.StringVar(&cfg.Workdir, "workdir", "", "default working directory of commands, created if missing (default: the current one)")
	flag.IntVar(&cfg.Limits.Processes, "max-processes", agentapi.DefaultMaxProcesses, "most background processes kept at once (more: 429)")
	flag.IntVar(&cfg.Limits.Sessions, "max-sessions", agentapi.DefaultMaxSessions, "most sessions besides the default one (more: 429)")
	flag.IntVar(&cfg.Limits.Contexts, "max-contexts", agentapi.DefaultMaxContexts, "most code contexts at once (more: 429)")
	version := flag.Bool("version", false, "print the version and protocol and exit")
	flag.Parse()
	if *version {
		fmt.Printf("sandbox-agent %s (protocol %d)\n", agentapi.Version, agentapi.ProtocolVersion)
		return
	}
	if err := agent.Run(context.Background(), cfg); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox-agent:", err)
		os.Exit(1)
	}
}
