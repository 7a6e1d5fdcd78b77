package node

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSettingsSetGet(t *testing.T) {
	const peerAddr = "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWLCZYXHR9i6uNqH7FNpqvtPBsWZENbe4QXbMJCBnmZAyc"
	tests := []struct {
		key, value string
		want       string // value read back; "" with wantErr
		wantErr    string
	}{
		{key: "profile", value: "local", want: "local"},
		{key: "profile", value: "wan", wantErr: `must be "default", "local" or "lan"`},
		{key: "profile", value: "lan", want: "lan"},
		{key: "api.listen", value: "127.0.0.1:0", want: "127.0.0.1:0"},
		{key: "api.listen", value: "[::1]:5480", want: "[::1]:5480"},
		{key: "api.listen", value: "localhost:80", want: "localhost:80"},
		{key: "api.listen", value: "5480", wantErr: "host:port"},
		{key: "api.listen", value: "example.org:80", wantErr: "IP address or localhost"},
		{key: "api.listen", value: "127.0.0.1:99999", wantErr: "bad port"},
		{key: "p2p.listen", value: "/ip4/127.0.0.1/tcp/0, /ip4/127.0.0.1/udp/0/quic-v1", want: "/ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/udp/0/quic-v1"},
		{key: "p2p.listen", value: "", want: ""},
		{key: "p2p.listen", value: "127.0.0.1:4001", wantErr: "127.0.0.1:4001"},
		{key: "p2p.bootstrap", value: peerAddr, want: peerAddr},
		{key: "p2p.bootstrap", value: "/ip4/127.0.0.1/tcp/4001", wantErr: "/ip4/127.0.0.1/tcp/4001"},
		{key: "p2p.conn_low", value: "50", want: "50"},
		{key: "p2p.conn_high", value: "-1", wantErr: "whole number"},
		{key: "p2p.conn_high", value: "lots", wantErr: "whole number"},
		{key: "store.nosync", value: "true", want: "true"},
		{key: "store.nosync", value: "maybe", wantErr: "true or false"},
		{key: "log.level", value: "debug", want: "debug"},
		{key: "log.level", value: "trace", wantErr: "debug, info"},
		{key: "log.format", value: "json", want: "json"},
		{key: "log.format", value: "xml", wantErr: "text or json"},
		{key: "dns.zonefile", value: "example.org", wantErr: "unknown config key \"dns.zonefile\" (valid keys: api.listen, dns.listen"},
		{key: "name", value: "laptop", want: "laptop"},
		{key: "name", value: "lap\ttop", wantErr: "non-printable"},
		{key: "name", value: "12D3KooWLCZYXHR9i6uNqH7FNpqvtPBsWZENbe4QXbMJCBnmZAyc", wantErr: "peer ID"},
		{key: "name", value: "", want: ""},
		{key: "role", value: "server", want: "server"},
		{key: "role", value: "king", wantErr: `must be "device" or "server"`},
		{key: "dns.zone", value: "example.org", want: "example.org"},
		{key: "dns.zone", value: "exa mple.org", wantErr: "not a domain name"},
		{key: "dns.zone", value: "", want: ""},
		{key: "dns.listen", value: "127.0.0.1:0", want: "127.0.0.1:0"},
		{key: "dns.listen", value: "53", wantErr: "host:port"},
		{key: "dns.servers", value: "127.0.0.1:53, [::1]:5353", want: "127.0.0.1:53,[::1]:5353"},
		{key: "dns.servers", value: "127.0.0.1", wantErr: "host:port"},
		{key: "dns.servers", value: "127.0.0.1:0", wantErr: "bad port"},
		{key: "dns.primary", value: "ns1.example.net:53", want: "ns1.example.net:53"},
		{key: "dns.primary", value: "a b", wantErr: "host or host:port"},
		{key: "dns.tsig", value: "pcnode-key:hmac-sha256:c2VjcmV0c2VjcmV0", want: "pcnode-key:hmac-sha256:c2VjcmV0c2VjcmV0"},
		{key: "dns.tsig", value: "pcnode-key:hmac-sha256:!!", wantErr: "base64"},
		{key: "dns.trust_anchor", value: "example.org. 3600 IN DS 1 13 2 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF", want: "example.org. 3600 IN DS 1 13 2 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"},
		{key: "dns.trust_anchor", value: "not a record", wantErr: "trust"},
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			s := DefaultSettings()
			before := *s
			err := s.Set(tt.key, tt.value)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Set err = %v, want containing %q", err, tt.wantErr)
				}
				if !cmp.Equal(before, *s, cmp.AllowUnexported(Settings{})) {
					t.Errorf("failed Set changed settings: %s", cmp.Diff(before, *s, cmp.AllowUnexported(Settings{})))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Get(tt.key)
			if err != nil || got != tt.want {
				t.Errorf("Get = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestSettingsSaveLoad(t *testing.T) {
	home := t.TempDir()
	s := DefaultSettings()
	for k, v := range map[string]string{
		"profile": "local", "api.listen": "127.0.0.1:0", "p2p.listen": "/ip4/127.0.0.1/tcp/0",
		"p2p.conn_high": "20", "store.nosync": "true", "log.format": "json",
	} {
		if err := s.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Save(home); err != nil {
		t.Fatal(err)
	}
	got, err := LoadSettings(home)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(s, got, cmp.AllowUnexported(Settings{})); d != "" {
		t.Errorf("round trip (-want +got):\n%s", d)
	}
}

func TestParseSettings(t *testing.T) {
	tests := []struct {
		name, text, wantErr string
		check               func(*Settings) bool
	}{
		{name: "empty gives defaults", text: "", check: func(s *Settings) bool { return s.API.Listen == DefaultAPIListen && s.Profile == ProfileDefault }},
		{name: "partial", text: "[api]\nlisten = \"127.0.0.1:9\"\n", check: func(s *Settings) bool { return s.API.Listen == "127.0.0.1:9" && s.Log.Level == "info" }},
		{name: "dotted", text: "api.listen = \"127.0.0.1:9\"\n", check: func(s *Settings) bool { return s.API.Listen == "127.0.0.1:9" }},
		{name: "unknown key", text: "[api]\nlisen = \"x\"\n", wantErr: `unknown key "api.lisen"`},
		{name: "bad value", text: "profile = \"wan\"\n", wantErr: "profile="},
		{name: "bad toml", text: "profile = \n", wantErr: "toml"},
		{name: "wrong type", text: "store.nosync = \"yes\"\n", wantErr: "nosync"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSettings([]byte(tt.text))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(s) {
				t.Errorf("settings %+v", s)
			}
		})
	}
}

func TestApplyEnv(t *testing.T) {
	env := map[string]string{"PCNODE_API_LISTEN": "127.0.0.1:7", "PCNODE_STORE_NOSYNC": "1", "PCNODE_P2P_LISTEN": "/ip4/127.0.0.1/tcp/0"}
	s := DefaultSettings()
	if err := s.ApplyEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if s.API.Listen != "127.0.0.1:7" || !s.Store.NoSync || len(s.P2P.Listen) != 1 {
		t.Errorf("settings %+v", s)
	}
	env["PCNODE_LOG_LEVEL"] = "loud"
	if err := s.ApplyEnv(func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "PCNODE_LOG_LEVEL") {
		t.Errorf("bad env: %v", err)
	}
	if EnvVar("p2p.conn_low") != "PCNODE_P2P_CONN_LOW" {
		t.Error(EnvVar("p2p.conn_low"))
	}
}

func FuzzSettingsSet(f *testing.F) {
	for _, k := range SettingKeys() {
		f.Add(k, "")
		f.Add(k, "true")
		f.Add(k, "127.0.0.1:0")
		f.Add(k, "/ip4/127.0.0.1/tcp/0")
	}
	f.Add("nope", "x")
	f.Fuzz(func(t *testing.T, key, value string) {
		s := DefaultSettings()
		if err := s.Set(key, value); err != nil {
			return
		}
		// What Set accepted, Get returns in a form Set accepts again,
		// and it survives a save and a parse.
		got, err := s.Get(key)
		if err != nil {
			t.Fatalf("Get after Set(%q, %q): %v", key, value, err)
		}
		s2 := DefaultSettings()
		if err := s2.Set(key, got); err != nil {
			t.Fatalf("Set(%q, %q) refused its own Get value: %v", key, got, err)
		}
		if err := s.validate(); err != nil {
			t.Fatalf("validate after Set(%q, %q): %v", key, value, err)
		}
	})
}

func FuzzParseSettings(f *testing.F) {
	f.Add([]byte("profile = \"local\"\n[api]\nlisten = \"127.0.0.1:0\"\n"))
	f.Add([]byte("[p2p]\nlisten = [\"/ip4/127.0.0.1/tcp/0\"]\nconn_low = 3\n"))
	f.Add([]byte("x = 1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSettings(b)
		if err != nil {
			return
		}
		if err := s.validate(); err != nil {
			t.Fatalf("parsed settings do not validate: %v", err)
		}
	})
}
