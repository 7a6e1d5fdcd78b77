package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ReloadResult says what a Reload changed.
type ReloadResult struct {
	// Applied are the changed keys now in effect. The log.* keys are
	// listed here, but applying them is the caller's business (the
	// daemon owns the logger): see Settings.
	Applied []string
	// NeedRestart are the changed keys that take effect only when the
	// daemon restarts; until then the old values stay in effect.
	NeedRestart []string
	// Settings are the settings now in effect.
	Settings Settings
}

// liveKey reports whether a changed key can be applied while the node
// runs: the DNS part is restarted with the new dns.* values, and the
// log level is the daemon's to change.
func liveKey(key string) bool {
	return strings.HasPrefix(key, "dns.") || key == "log.level"
}

// Reload re-reads <home>/config.toml and the environment (as New does)
// and applies what can change while the node runs: the dns.* keys (the
// DNS part, served zone and publisher, restarts with them) and
// log.level. Every other changed key is listed in NeedRestart and keeps
// its old value until the daemon restarts. A config that does not parse
// changes nothing and is an error. If the DNS part fails to restart with
// the new values, it is started again with the old ones and the error
// returned. SIGHUP calls it in pcnode daemon.
func (n *Node) Reload(ctx context.Context) (ReloadResult, error) {
	s, err := LoadSettings(n.home)
	if err != nil {
		return ReloadResult{}, fmt.Errorf("node: reload: %w", err)
	}
	if err := s.ApplyEnv(n.cfg.Getenv); err != nil {
		return ReloadResult{}, fmt.Errorf("node: reload: %w", err)
	}
	if n.cfg.APIListen != "" {
		if err := s.Set("api.listen", n.cfg.APIListen); err != nil {
			return ReloadResult{}, fmt.Errorf("node: reload: %w", err)
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.started || n.closed {
		return ReloadResult{}, errors.New("node: reload: node is not running")
	}
	old := n.settings.Load()
	next := *old
	var res ReloadResult
	dnsChanged := false
	for _, st := range settingsTable {
		v := st.get(s)
		if st.get(old) == v {
			continue
		}
		if !liveKey(st.key) {
			res.NeedRestart = append(res.NeedRestart, st.key)
			continue
		}
		if err := st.set(&next, v); err != nil { // validated by LoadSettings
			return ReloadResult{}, fmt.Errorf("node: reload: %s: %w", st.key, err)
		}
		res.Applied = append(res.Applied, st.key)
		dnsChanged = dnsChanged || strings.HasPrefix(st.key, "dns.")
	}
	if dnsChanged && !n.cfg.Offline {
		if err := n.restartDNSLocked(ctx, &next); err != nil {
			res.Settings = *n.settings.Load()
			return res, fmt.Errorf("node: reload: dns: %w (the old dns settings stay in effect)", err)
		}
	}
	// Readers outside n.mu take the pointer once per use; the old value
	// stays valid for them.
	n.settings.Store(&next)
	n.log.Info("config reloaded", "applied", res.Applied, "need_restart", res.NeedRestart)
	res.Settings = next
	return res, nil
}

// restartDNSLocked stops the DNS part and starts it with next; on failure
// it starts it again with the current settings. n.mu is held.
func (n *Node) restartDNSLocked(ctx context.Context, next *Settings) error {
	old := n.settings.Load()
	if n.dns != nil {
		if err := n.dns.close(); err != nil {
			n.log.Warn("dns: close for reload", "err", err)
		}
		n.dns = nil
	}
	n.settings.Store(next)
	err := n.startDNSLocked(ctx)
	if err == nil {
		return nil
	}
	n.settings.Store(old)
	if rerr := n.startDNSLocked(ctx); rerr != nil {
		n.log.Error("dns: restarting with the old settings failed", "err", rerr)
	}
	return err
}
