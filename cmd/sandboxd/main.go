// Command sandboxd is the Sandboxd daemon: it serves the sandbox API and
// runs sandboxes. See package internal/daemon.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/sandboxd/sandboxd/internal/agentapi"
	"github.com/sandboxd/sandboxd/internal/daemon"
	"github.com/sandboxd/sandboxd/internal/manager"
	"github.com/sandboxd/sandboxd/internal/runtime/runc"
)

func main() {
	var cfg daemon.Config
	flag.StringVar(&cfg.Listen, "listen", "127.0.0.1:8787", "API listen address")
	flag.StringVar(&cfg.DataDir, "data-dir", "/var/lib/sandboxd", "state, sandboxes' files and the token file")
	flag.StringVar(&cfg.ImagesDir, "images-dir", "", "images directory (default DATA-DIR/images)")
	flag.StringVar(&cfg.Token, "token", os.Getenv("SANDBOXD_TOKEN"), "API token (env SANDBOXD_TOKEN; default: generated once into DATA-DIR/token)")
	flag.StringVar(&cfg.PreviewDomain, "preview-domain", "localhost", "domain of preview URLs")
	flag.Func("trusted-proxy", "address or CIDR of a proxy in front of the daemon whose X-Forwarded-* headers are believed (repeatable, or comma-separated)", func(v string) error {
		cfg.TrustedProxies = append(cfg.TrustedProxies, v)
		return nil
	})
	flag.StringVar(&cfg.AgentBinary, "agent", "", "sandbox-agent binary (default: beside sandboxd)")
	flag.StringVar(&cfg.Runc, "runc", "runc", "runc binary")
	flag.IntVar(&cfg.MaxOutputBytes, "max-output-bytes", 16<<20, "in-memory cap of each exec output stream")
	flag.IntVar(&cfg.MaxSandboxes, "max-sandboxes", 1000, "most sandboxes at once (more: 429)")
	flag.Func("uid-base", fmt.Sprintf("first host uid of the sandboxes' uid ranges, 65536 each; keep it for the life of the data dir (default %d)", manager.DefaultUIDBase), func(v string) error {
		n, err := strconv.ParseUint(v, 10, 32)
		cfg.UIDBase = uint32(n)
		return err
	})
	flag.IntVar(&cfg.WarmPool, "warm-pool", 2, "fewest sandboxes of the default image kept started ahead for new IDs (0: no pool)")
	flag.IntVar(&cfg.WarmPoolMax, "warm-pool-max", 32, "most sandboxes the warm pool grows to when creates come faster (the creates of the last 10 minutes)")
	flag.Int64Var(&cfg.WarmPoolMemoryMB, "warm-pool-memory", 512, "memory the warm pool's sandboxes may take together, in MiB (0: no bound but --warm-pool-max)")
	flag.Int64Var(&cfg.DiskMB, "disk-mb", daemon.DefaultDiskMB, "disk quota of a sandbox that asks for none, in MiB (a sparse file; 0: no quota)")
	flag.IntVar(&cfg.AgentLimits.Processes, "max-processes", agentapi.DefaultMaxProcesses, "most background processes per sandbox (more: 429)")
	flag.IntVar(&cfg.AgentLimits.Sessions, "max-sessions", agentapi.DefaultMaxSessions, "most sessions per sandbox besides the default one (more: 429)")
	flag.IntVar(&cfg.AgentLimits.Contexts, "max-contexts", agentapi.DefaultMaxContexts, "most code contexts per sandbox (more: 429)")
	flag.StringVar(&cfg.Bridge.Name, "bridge-name", runc.DefaultBridgeName, "bridge of network mode bridge (also its nftables table, inet NAME)")
	flag.StringVar(&cfg.Bridge.CIDR, "bridge-cidr", runc.DefaultBridgeCIDR, "IPv4 range of bridge sandboxes, a /16 or larger")
	flag.StringVar(&cfg.Bridge.HostPorts, "bridge-host-ports", "", "host ports bridge sandboxes may reach, e.g. 5432,53/udp (default: none of the host's services)")
	flag.StringVar(&cfg.Bridge.DNS, "bridge-dns", "", "nameservers of bridge sandboxes, comma-separated (default: the host's)")
	flag.Parse()
	if cfg.DiskMB == 0 {
		cfg.DiskMB = -1 // Config's "no quota"
	}
	cfg.Out = os.Stdout

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := daemon.Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "sandboxd:", err)
		os.Exit(1)
	}
}
