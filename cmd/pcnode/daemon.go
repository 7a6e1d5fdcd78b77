package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/pcnode/pcnode/node"
	"github.com/pcnode/pcnode/node/api"
)

func (a *app) daemonCmd() *cobra.Command {
	var apiListen, role string
	c := &cobra.Command{
		Use:   "daemon",
		Short: "Run the node in the foreground until interrupted",
		Long: `Run the node in the foreground: the libp2p host, the block store and the
HTTP API. It returns on SIGINT or SIGTERM after closing everything.

When ready it prints the node's status (one JSON object with --json) on
stdout and writes <home>/api, which other pcnode commands read to find it.
Logs go to stderr (--log-format text|json, --log-level; else the config's
log.format and log.level). Only one process may have a home open at a
time: a second daemon on the same home is refused.

--role server runs the node as the cloud's home server for this run
(overriding the role setting): it relays for members, serves the gateway,
keeps a receive-only replica of every member's folder and mirrors the
members' shares (docs/SERVER.md).

On SIGHUP the daemon re-reads config.toml: log.level and the dns.* keys
take effect at once; it logs the changed keys that need a restart.
Under systemd (Type=notify) it reports READY, RELOADING and STOPPING.`,
		Args: args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			o := daemonOptions{apiListen: apiListen}
			if role != "" {
				if role != node.RoleDevice && role != node.RoleServer {
					return usageErrorf("bad --role %q: want %s or %s", role, node.RoleDevice, node.RoleServer)
				}
				o.env = map[string]string{node.EnvVar("role"): role}
			}
			return a.runDaemon(cmd.Context(), o)
		},
	}
	c.Flags().StringVar(&apiListen, "api-listen", "", "host:port for the HTTP API, overriding the config's api.listen")
	c.Flags().StringVar(&role, "role", "", `"device" or "server", overriding the role setting for this run`)
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
	var level slog.LevelVar
	level.Set(configLevel(s))
	log, err := a.daemonLogger(&level, format)
	if err != nil {
		return err
	}
	slog.SetDefault(log) // only cmd/pcnode sets the default logger

	// SIGHUP is caught from before the node starts, so an early reload
	// request does not kill the daemon (the default action of SIGHUP).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

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
		if u := n.GatewayURL(); u != "" {
			fmt.Fprintf(w, "gateway  %s\n", u)
		}
		fmt.Fprintf(w, "from another shell: PCNODE_HOME=%s %s status\n", shellQuote(st.Home), progName())
	}); err != nil {
		return err
	}
	warnRole(ctx, log, n)
	go trimMemory(ctx, log)
	sdNotify(log, "READY=1")
	for {
		select {
		case <-ctx.Done():
			sdNotify(log, "STOPPING=1")
			log.Info("daemon stopping", "reason", "signal")
			return n.Close()
		case <-hup:
			sdNotify(log, "RELOADING=1")
			res, err := n.Reload(ctx)
			if err != nil {
				log.Error("reload failed", "err", err)
			}
			if a.logLevel == "" && slices.Contains(res.Applied, "log.level") {
				level.Set(configLevel(&res.Settings))
			}
			if len(res.NeedRestart) > 0 {
				log.Warn("config keys changed that take effect after a restart", "keys", res.NeedRestart)
			}
			sdNotify(log, "READY=1")
		}
	}
}

// configLevel is the log level of s (info when it does not parse).
func configLevel(s *node.Settings) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s.Log.Level)); err != nil {
		return slog.LevelInfo
	}
	return l
}

// daemonLogger is the daemon's logger: like logger, with a level that a
// reload can change (unless --log-level fixed it).
func (a *app) daemonLogger(level *slog.LevelVar, format string) (*slog.Logger, error) {
	if a.logLevel != "" {
		var l slog.Level
		if err := l.UnmarshalText([]byte(a.logLevel)); err != nil {
			return nil, usageErrorf("bad --log-level %q: want debug, info, warn or error", a.logLevel)
		}
		level.Set(l)
	}
	if a.logFormat != "" {
		format = a.logFormat
	}
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(a.stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(a.stderr, opts)), nil
	}
	return nil, usageErrorf("bad --log-format %q: want text or json", format)
}

// warnRole logs when the role setting and the roster disagree: other
// devices pick their relays and share mirrors by the roster's role.
func warnRole(ctx context.Context, log *slog.Logger, n *node.Node) {
	ci, err := n.Cloud(ctx)
	if err != nil || ci.Role == "" {
		return
	}
	if r := n.Settings().Role; r != ci.Role {
		log.Warn("this run's role differs from this device's role in the cloud's roster; other devices go by the roster (relay, share mirrors)", "role", r, "roster_role", ci.Role)
	}
}

// sdNotify sends state to systemd's notification socket when the daemon
// runs under a unit of Type=notify ($NOTIFY_SOCKET); otherwise it does
// nothing. It is the whole sd_notify protocol: one datagram per state.
func sdNotify(log *slog.Logger, state string) {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return
	}
	if strings.HasPrefix(addr, "@") {
		addr = "\x00" + addr[1:] // abstract socket
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		log.Debug("sd_notify", "err", err)
		return
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		log.Debug("sd_notify", "err", err)
	}
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
