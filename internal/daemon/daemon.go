// Package daemon wires sandboxd together: configuration, the data
// directory, the API token, the state store, the runtime, the manager and
// the HTTP server; and it shuts them down in order.
package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sandboxd/sandboxd/internal/agentapi"
	"github.com/sandboxd/sandboxd/internal/manager"
	"github.com/sandboxd/sandboxd/internal/metrics"
	"github.com/sandboxd/sandboxd/internal/runtime/runc"
	"github.com/sandboxd/sandboxd/internal/server"
	"github.com/sandboxd/sandboxd/internal/store"
)

// Run serves until ctx ends, then shuts down gracefully. Sandboxes keep
// running across a daemon restart; the next Run re-attaches them.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.setDefaults(); err != nil {
		return err
	}
	log := cfg.Logger
	if err := os.MkdirAll(cfg.DataDir, 0o711); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := os.Chmod(cfg.DataDir, 0o711); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	token, err := loadToken(cfg.Token, filepath.Join(cfg.DataDir, "token"))
	if err != nil {
		return err
	}
	st, err := store.Open(filepath.Join(cfg.DataDir, "state.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	bridge, err := cfg.Bridge.runc()
	if err != nil {
		return err
	}
	rt, err := runc.New(runc.Config{Dir: cfg.DataDir, Runc: cfg.Runc, Agent: cfg.AgentBinary, AgentArgs: cfg.AgentLimits.Args(), Bridge: bridge, Logger: log})
	if err != nil {
		return err
	}
	defer rt.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := metrics.New(reg)
	mgr := manager.New(manager.Config{
		Store: st, Runtime: rt, ImagesDir: cfg.ImagesDir, MaxOutputBytes: cfg.MaxOutputBytes,
		UIDBase: cfg.UIDBase, MaxSandboxes: cfg.MaxSandboxes, DiskMB: cfg.DiskMB, WarmPool: cfg.WarmPool, WarmPoolMax: cfg.WarmPoolMax, WarmPoolMemoryMB: cfg.WarmPoolMemoryMB, Metrics: m, Logger: log,
	})
	defer mgr.Close()
	reg.MustRegister(manager.NewCollector(mgr))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sandboxd_warm_pool_ready", Help: "Pooled sandboxes started and ready to be claimed by a new ID.",
	}, func() float64 { return float64(mgr.PoolSize()) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sandboxd_warm_pool_target", Help: "Pooled sandboxes the warm pool aims to hold now: the recent creates it could serve, between --warm-pool and --warm-pool-max, within --warm-pool-memory.",
	}, func() float64 { return float64(mgr.PoolTarget()) }))
	if err := mgr.Recover(ctx); err != nil {
		return fmt.Errorf("recover sandboxes: %w", err)
	}

	preview, reserved, err := cfg.previewConfig()
	if err != nil {
		return err
	}
	// closing ends when shutdown begins: upgraded connections (terminal
	// WebSockets), which Shutdown neither waits for nor closes, end then.
	closing, stopUpgraded := context.WithCancel(context.Background())
	defer stopUpgraded()
	handler := server.New(server.Config{
		Manager: mgr, Token: token, Gatherer: reg, Metrics: m,
		MaxOutputBytes: cfg.MaxOutputBytes, Version: agentapi.Version, Logger: log,
		Preview: preview, ReservedPorts: reserved, Closing: closing,
	})
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    MaxHeaderBytes,
		// The server's base context is not the request's: shutdown
		// cancels neither running commands nor container starts abruptly.
		BaseContext: func(net.Listener) context.Context { return context.Background() },
	}
	srv.RegisterOnShutdown(stopUpgraded)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	addr := ln.Addr().String()
	log.Info("sandboxd serving", "addr", addr, "data", cfg.DataDir, "images", cfg.ImagesDir)
	if cfg.Out != nil {
		fmt.Fprintf(cfg.Out, "sandboxd listening on http://%s\n  export SANDBOX_URL=http://%s\n", addr, addr)
		// A token given by flag or environment is the caller's already;
		// one from the token file is shown, for the README's tour.
		if cfg.Token == "" {
			fmt.Fprintf(cfg.Out, "  export SANDBOX_TOKEN=%s   # also in %s\n", token, filepath.Join(cfg.DataDir, "token"))
		}
	}
	if cfg.Ready != nil {
		cfg.Ready(addr)
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("shutdown: closing open requests", "err", err)
		srv.Close()
	}
	return nil
}

// loadToken returns the configured token, else the one kept in path, else
// a new random one written to path (0600).
func loadToken(configured, path string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	b, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("token file: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(raw)
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	return tok, nil
}
