package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pcnode/pcnode/node"
	"github.com/pcnode/pcnode/node/api"
)

// Exit statuses. Scripts may rely on 0 meaning success and nothing else.
const (
	exitOK    = 0
	exitError = 1 // the command ran and failed
	exitUsage = 2 // the command line was wrong
)

// app holds what every command shares: the streams and the global flags.
// One app serves one run.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer

	home      string // --home; "" means $PCNODE_HOME or the default
	json      bool   // --json
	apiURL    string // --api; "" means read <home>/api
	logLevel  string // --log-level; "" means the command's default
	logFormat string // --log-format; "" means config, else text
}

// run is the whole CLI: it parses args, runs one command and returns the
// exit status. Errors are printed to stderr as "pcnode: message"; with
// --json an {"error": "message"} object is also printed on stdout, so a
// script always reads exactly one JSON object there.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	return a.fail(cmd, err)
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "pcnode",
		Short: "pcnode: your devices as your own private cloud",
		Long: `pcnode keeps content-addressed data (IPFS-compatible UnixFS) in a node's
home directory and shares it with other pcnode devices over libp2p.

Start a node with 'pcnode init' and 'pcnode daemon'. Other commands talk to
the running daemon over its HTTP API; with no daemon running, commands that
make sense offline (add, cat, get of local data, ls, pin, gc, repo, status)
open the home directly.

The home is --home, else $PCNODE_HOME, else ~/.local/share/pcnode.

With --json every command prints exactly one JSON object on stdout. A
failing command prints its error on stderr and, with --json, also
{"error": "message"} on stdout. The exit status is 0 only on success
(2 for a wrong command line).`,
		SilenceErrors: true,
		SilenceUsage:  true,
		// A bare "pcnode" or an unknown subcommand is a usage error.
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unknown command %q", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return usageErrorf("missing command")
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.home, "home", "", "node home directory (default $PCNODE_HOME or ~/.local/share/pcnode)")
	pf.BoolVar(&a.json, "json", false, "print one JSON object on stdout")
	pf.StringVar(&a.apiURL, "api", "", "daemon API base URL (default: read from <home>/api)")
	pf.StringVar(&a.logLevel, "log-level", "", "debug, info, warn or error (default: info for the daemon, warn otherwise)")
	pf.StringVar(&a.logFormat, "log-format", "", "text or json (default: the config's log.format)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })

	root.AddCommand(
		a.initCmd(),
		a.daemonCmd(),
		a.statusCmd(),
		a.addCmd(),
		a.catCmd(),
		a.getCmd(),
		a.shareCmd(),
		a.folderCmd(),
		a.conflictsCmd(),
		a.lsCmd(),
		a.pinCmd(),
		a.gcCmd(),
		a.repoCmd(),
		a.peersCmd(),
		a.configCmd(),
		a.cloudCmd(),
		a.devicesCmd(),
		a.inviteCmd(),
		a.joinCmd(),
		a.dnsCmd(),
		a.versionCmd(),
	)
	return root
}

// group returns a command that only holds subcommands; run bare it prints
// help, and with an unknown subcommand it is a usage error.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErrorf("%s needs a subcommand", cmd.CommandPath())
			}
			return usageErrorf("unknown command %q for %q", args[0], cmd.CommandPath())
		},
	}
	c.AddCommand(subs...)
	return c
}

// usageError marks a wrong command line (exit status 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// args returns a cobra.PositionalArgs that wants exactly the named
// arguments.
func args(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, got []string) error {
		if len(got) == len(names) {
			return nil
		}
		if len(got) < len(names) {
			return usageErrorf("%s needs %s", cmd.CommandPath(), strings.Join(names[len(got):], " "))
		}
		return usageErrorf("%s takes %d argument(s), got %d", cmd.CommandPath(), len(names), len(got))
	}
}

// reportedError is returned by a command that has already printed what
// it wants the user to see (its JSON object included): run only sets the
// exit status.
type reportedError struct{ err error }

func (e reportedError) Error() string { return e.err.Error() }
func (e reportedError) Unwrap() error { return e.err }

func (a *app) fail(cmd *cobra.Command, err error) int {
	code := exitError
	var ue usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") {
		code = exitUsage
	}
	var re reportedError
	if errors.As(err, &re) {
		fmt.Fprintf(a.stderr, "pcnode: %v\n", err)
		return code
	}
	msg := a.explain(err)
	fmt.Fprintf(a.stderr, "pcnode: %s\n", msg)
	if code == exitUsage && cmd != nil {
		fmt.Fprintf(a.stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	if a.json {
		_ = json.NewEncoder(a.stdout).Encode(api.Error{Error: msg})
	}
	return code
}

// explain turns errors the user can act on into a sentence that says
// what to do.
func (a *app) explain(err error) string {
	switch {
	case errors.Is(err, node.ErrNotInitialized):
		home, herr := a.homeDir()
		if herr != nil {
			home = "(unknown)"
		}
		return fmt.Sprintf("no pcnode home at %s: run pcnode init", home)
	case errors.Is(err, errNeedsDaemon):
		return errNeedsDaemon.Error()
	case errors.Is(err, node.ErrHomeLocked):
		home, _ := a.homeDir()
		pid := "?"
		if b, rerr := os.ReadFile(filepath.Join(home, node.LockFile)); rerr == nil && len(bytes.TrimSpace(b)) > 0 {
			pid = string(bytes.TrimSpace(b))
		}
		return fmt.Sprintf("home %s is in use by another pcnode (pid %s): stop it first, or let commands use its API", home, pid)
	}
	return err.Error()
}

// errNeedsDaemon is returned by commands that need the network when no
// daemon runs.
var errNeedsDaemon = errors.New("no daemon running: start one with pcnode daemon")

// homeDir is the node's home: --home, else node.DefaultHome.
func (a *app) homeDir() (string, error) {
	if a.home != "" {
		return filepath.Abs(a.home)
	}
	return node.DefaultHome()
}

// print writes v as one JSON object with --json, else calls text.
func (a *app) print(v any, text func(w io.Writer)) error {
	if a.json {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		// Links hold '&': scripts grep them, so no \u0026 escapes.
		enc.SetEscapeHTML(false)
		return enc.Encode(v)
	}
	text(a.stdout)
	return nil
}

// logger builds the command's logger from --log-level and --log-format,
// falling back to def and format.
func (a *app) logger(def slog.Level, format string) (*slog.Logger, error) {
	level := def
	if a.logLevel != "" {
		if err := level.UnmarshalText([]byte(a.logLevel)); err != nil {
			return nil, usageErrorf("bad --log-level %q: want debug, info, warn or error", a.logLevel)
		}
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

// isTerminal reports whether w is a terminal (progress bars go only there).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isatty(f)
}
