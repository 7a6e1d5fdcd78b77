package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pcnode/pcnode/node"
	"github.com/pcnode/pcnode/node/api"
)

func (a *app) daemonCmd() *cobra.Command {
	var apiListen string
	c := &cobra.Command{
		Use:   "daemon",
		Short: "Run the node in the foreground until interrupted",
		Long: `Run the node in the foreground: the libp2p host, the block store and the
HTTP API. It returns on SIGINT or SIGTERM after closing everything.

When ready it prints the node's status (one JSON object with --json) on
stdout and writes <home>/api, which other pcnode commands read to find it.
Logs go to stderr (--log-format text|json, --log-level). Only one process
may have a home open at a time: a second daemon on the same home is refused.`,
		Args: args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runDaemon(cmd.Context(), daemonOptions{apiListen: apiListen})
		},
	}
	c.Flags().StringVar(&apiListen, "api-listen", "", "host:port for the HTTP API, overriding the config's api.listen")
	return c
}

// daemonOptions adjusts a daemon run for daemon and dns serve.
type daemonOptions struct {
	apiListen string // overrides api.listen when not ""
	// env overrides environment variables (PCNODE_DNS_LISTEN, say) for
	// the node's settings; nil means none.
	env map[string]string
	// check vets the settings the node will run with (after overrides).
	check func(*node.Settings) error
}

// getenv reads the environment with o.env on top.
func (o daemonOptions) getenv(k string) string {
	if v, ok := o.env[k]; ok {
		return v
	}
	return os.Getenv(k)
}

// runDaemon runs the node until ctx ends (SIGINT or SIGTERM).
func (a *app) runDaemon(ctx context.Context, o daemonOptions) error {
	home, err := a.homeDir()
	if err != nil {
		return err
	}
	s, err := node.LoadSettings(home)
	if err != nil {
		return err
	}
	if err := s.ApplyEnv(o.getenv); err != nil {
		return err
	}
	if o.check != nil {
		if err := o.check(s); err != nil {
			return err
		}
	}
	format, _ := s.Get("log.format")
	lvl, _ := s.Get("log.level")
	var def slog.Level
	if err := def.UnmarshalText([]byte(lvl)); err != nil {
		def = slog.LevelInfo
	}
	log, err := a.logger(def, format)
	if err != nil {
		return err
	}
	slog.SetDefault(log) // only cmd/pcnode sets the default logger

	n, err := a.startNode(ctx, node.Config{Home: home, Logger: log, APIListen: o.apiListen, Getenv: o.getenv, Version: buildVersion().Version})
	if err != nil {
		return err
	}
	defer n.Close()
	st, err := n.Status(ctx)
	if err != nil {
		return err
	}
	cs := withCloud(ctx, n, st)
	if err := a.print(cs, func(w io.Writer) {
		fmt.Fprintf(w, "pcnode daemon ready\n")
		printStatus(w, cs)
		fmt.Fprintf(w, "from another shell: PCNODE_HOME=%s %s status\n", shellQuote(st.Home), progName())
	}); err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("daemon stopping", "reason", "signal")
	return n.Close()
}

// startNode starts the daemon's node. When an offline command (status,
// cat, ...) has the home open for a moment, it waits for it, at most
// lockedWait; a home held by another daemon, whose API answers, is
// refused at once.
func (a *app) startNode(ctx context.Context, cfg node.Config) (*node.Node, error) {
	deadline := time.Now().Add(lockedWait)
	for {
		n, err := node.New(cfg)
		if err != nil {
			return nil, err
		}
		err = n.Start(ctx)
		if err == nil {
			return n, nil
		}
		n.Close()
		if !errors.Is(err, node.ErrHomeLocked) || time.Now().After(deadline) {
			return nil, err
		}
		if _, derr := api.DialHome(cfg.Home); derr == nil {
			return nil, err // another daemon runs there
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(100 * time.Millisecond): // polling the lock, bounded by deadline
		}
	}
}

func (a *app) statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the node's identity, addresses and API",
		Long: `Show the node's peer ID, its full multiaddrs (ending in /p2p/<id>), the
API URL and whether it is online. With no daemon running it opens the
home offline and says so.`,
		Args: args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, done, err := a.backend(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer done()
			st, err := b.Status(cmd.Context())
			if err != nil {
				return err
			}
			if st.Addrs == nil {
				st.Addrs = []string{}
			}
			cs := withCloud(cmd.Context(), b, st)
			return a.print(cs, func(w io.Writer) { printStatus(w, cs) })
		},
	}
}

func printStatus(w io.Writer, cs cloudStatus) {
	st := cs.Status
	online := "online"
	if !st.Online {
		online = "offline (no daemon running)"
	}
	fmt.Fprintf(w, "peer ID  %s\n", st.ID)
	fmt.Fprintf(w, "state    %s\n", online)
	if st.API != "" {
		fmt.Fprintf(w, "API      %s\n", st.API)
	}
	fmt.Fprintf(w, "profile  %s\n", st.Profile)
	fmt.Fprintf(w, "home     %s\n", st.Home)
	fmt.Fprintf(w, "version  %s\n", st.Version)
	fmt.Fprintf(w, "peers    %d\n", st.Peers)
	if st.Cloud != "" {
		fmt.Fprintf(w, "cloud    %s\n", st.Cloud)
	}
	if cs.Device != "" {
		fmt.Fprintf(w, "device   %s\n", cs.Device)
	}
	if st.DNS != "" {
		fmt.Fprintf(w, "DNS      %s\n", st.DNS)
	}
	if len(st.Addrs) > 0 {
		fmt.Fprintf(w, "addresses\n  %s\n", strings.Join(st.Addrs, "\n  "))
	}
}

// progName is how the user ran pcnode, for hints that can be pasted:
// "bin/pcnode" after make run, else "pcnode".
func progName() string {
	if p := os.Args[0]; strings.Contains(p, "/") && !filepath.IsAbs(p) {
		return p
	}
	return "pcnode"
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
