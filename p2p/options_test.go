package p2p

import (
	"testing"

	"github.com/libp2p/go-libp2p/config"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestProfileOptions checks which libp2p services each profile asks for,
// by applying the options to a libp2p config without starting anything (a
// default-profile host would map ports and dial the public DHT).
func TestProfileOptions(t *testing.T) {
	relays := func() []peer.AddrInfo { return nil }
	tests := []struct {
		name   string
		cfg    func(*Config)
		natmap bool
		autonat, punch, relay, natSvc,
		autorelay bool
	}{
		{name: "default", cfg: func(c *Config) { c.Profile = ProfileDefault },
			natmap: true, autonat: true, punch: true, relay: true},
		{name: "default home server", cfg: func(c *Config) {
			c.Profile, c.RelayService, c.StaticRelays = ProfileDefault, true, relays
		}, natmap: true, autonat: true, punch: true, relay: true, natSvc: true, autorelay: true},
		// The local profile keeps the relay transport (for circuits
		// through loopback relays). In both profiles Start runs the
		// relay service itself (not libp2p's option, which waits for
		// AutoNAT); a default-profile server answers AutoNAT probes.
		{name: "local", cfg: func(c *Config) {}, relay: true},
		{name: "local relay", cfg: func(c *Config) { c.RelayService, c.StaticRelays = true, relays }, relay: true},
		// ProfileLAN punches holes with its own service (path.go), and
		// has neither port mapping nor AutoNAT.
		{name: "lan", cfg: func(c *Config) { c.Profile, c.ListenAddrs, c.StaticRelays = ProfileLAN, nil, relays }, relay: true},
		{name: "lan server", cfg: func(c *Config) { c.Profile, c.ListenAddrs, c.RelayService = ProfileLAN, nil, true }, relay: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := localConfig(t)
			tt.cfg(&cfg)
			h, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var lc config.Config
			if err := lc.Apply(h.options(nil, nil)...); err != nil {
				t.Fatal(err)
			}
			got := []bool{lc.NATManager != nil, lc.EnableAutoNATv2, lc.EnableHolePunching, lc.Relay, lc.EnableRelayService || lc.AutoNATConfig.EnableService, lc.EnableAutoRelay}
			want := []bool{tt.natmap, tt.autonat, tt.punch, tt.relay, tt.natSvc, tt.autorelay}
			names := []string{"NAT port map", "AutoNAT v2", "hole punching", "relay transport", "libp2p relay service or AutoNAT service", "autorelay"}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("%s = %v, want %v", names[i], got[i], want[i])
				}
			}
		})
	}
}
