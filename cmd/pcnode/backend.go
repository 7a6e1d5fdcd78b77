package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/pcnode/pcnode/node"
	"github.com/pcnode/pcnode/node/api"
)

// lockedWait is how long a command waits for a daemon that holds the home
// but has not yet written <home>/api: long enough for a node to start,
// short enough that a stuck one is reported.
const lockedWait = 15 * time.Second

// backend returns the node to talk to and a function that releases it.
//
// It is the daemon's API when one runs (or --api names one). Otherwise,
// when needDaemon is false, it opens the home offline in this process,
// which gives the same methods without networking; when needDaemon is
// true it fails with errNeedsDaemon.
func (a *app) backend(ctx context.Context, needDaemon bool) (api.Backend, func(), error) {
	home, err := a.homeDir()
	if err != nil {
		return nil, nil, err
	}
	if a.apiURL != "" {
		tok, err := node.LoadToken(home)
		if err != nil {
			return nil, nil, err
		}
		return api.NewClient(a.apiURL, tok, nil), func() {}, nil
	}
	c, err := api.DialHome(home)
	if err == nil {
		return c, func() {}, nil
	}
	if !errors.Is(err, api.ErrNoDaemon) {
		return nil, nil, err
	}
	if needDaemon {
		if _, err := node.LoadSettings(home); err != nil {
			return nil, nil, err
		}
		if !homeBusy(home) {
			return nil, nil, errNeedsDaemon
		}
		// Most likely a daemon that is still starting.
		return a.waitHome(ctx, home, true)
	}
	n, err := a.openOffline(ctx, home)
	if errors.Is(err, node.ErrHomeLocked) {
		// Another process has the home: a daemon still starting (it takes
		// the lock before it writes <home>/api) or stopping, or another
		// offline command. Wait for whichever comes first.
		return a.waitHome(ctx, home, false)
	}
	if err != nil {
		return nil, nil, err
	}
	return n, func() { n.Close() }, nil
}

// waitHome waits, at most lockedWait, until a daemon answers on home or,
// unless needDaemon, the home is free to open offline. On timeout it
// reports the home as in use (or, with needDaemon, no daemon).
func (a *app) waitHome(ctx context.Context, home string, needDaemon bool) (api.Backend, func(), error) {
	waitCtx, cancel := context.WithTimeout(ctx, lockedWait)
	defer cancel()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		if c, err := api.DialHome(home); err == nil {
			return c, func() {}, nil
		}
		if !homeBusy(home) {
			if needDaemon {
				return nil, nil, errNeedsDaemon
			}
			n, err := a.openOffline(ctx, home)
			if err == nil {
				return n, func() { n.Close() }, nil
			}
			if !errors.Is(err, node.ErrHomeLocked) {
				return nil, nil, err
			}
		}
		select {
		case <-waitCtx.Done():
			if needDaemon {
				return nil, nil, errNeedsDaemon
			}
			return nil, nil, fmt.Errorf("%w (waited %v)", node.ErrHomeLocked, lockedWait)
		case <-t.C:
		}
	}
}

func (a *app) openOffline(ctx context.Context, home string) (*node.Node, error) {
	log, err := a.logger(slog.LevelWarn, "")
	if err != nil {
		return nil, err
	}
	n, err := node.New(node.Config{Home: home, Offline: true, Logger: log, Version: buildVersion().Version})
	if err != nil {
		return nil, err
	}
	if err := n.Start(ctx); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// homeBusy reports whether a live process holds the home: node writes
// the holder's pid into <home>/lock and empties it on release. It only
// reads the file, so it can never get in the way of a daemon taking the
// lock.
func homeBusy(home string) bool {
	b, err := os.ReadFile(filepath.Join(home, node.LockFile))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return false
	}
	err = unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

func isatty(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }
