package node

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/pcnode/pcnode/dnslink"
	"github.com/pcnode/pcnode/node/cloud"
)

// DefaultAPIListen is api.listen unless the config says otherwise: a fixed
// loopback port, so `pcnode status` finds a daemon started with defaults.
const DefaultAPIListen = "127.0.0.1:5480"

// Profiles.
const (
	ProfileDefault = "default" // public-Internet ready: real listen addresses, bootstrap, NAT traversal
	ProfileLocal   = "local"   // loopback only, no public bootstrap: for tests and demos
	// ProfileLAN is for networks of the documentation ranges (the netns
	// testbed): listen on every IPv4 interface, mDNS on, no public
	// bootstrap, no port mapping, dial only 192.0.2.0/24, 198.51.100.0/24,
	// 203.0.113.0/24 and loopback (p2p.ProfileLAN).
	ProfileLAN = "lan"
)

// Settings is the content of config.toml. Keys are addressed with dotted
// names ("api.listen"); docs/CONFIG.md lists them all. The zero value is
// not meaningful; start from DefaultSettings or LoadSettings.
type Settings struct {
	Profile string `toml:"profile"`
	// Name is this device's name in its cloud, used when the home creates
	// or joins a cloud; "" means the host name.
	Name string `toml:"name"`
	// Role is RoleDevice or RoleServer; a server runs a relay for the
	// cloud's members.
	Role  string        `toml:"role"`
	API   apiSettings   `toml:"api"`
	P2P   p2pSettings   `toml:"p2p"`
	Store storeSettings `toml:"store"`
	Log   logSettings   `toml:"log"`
	// DNS is the dns.* keys, as dnslink reads them (docs/DNS.md).
	DNS dnslink.Config `toml:"dns"`
	// Gateway is the gateway.* keys (docs/SHARE.md).
	Gateway gatewaySettings `toml:"gateway"`
	// Server is the server.* keys (docs/SERVER.md).
	Server serverSettings `toml:"server"`
}

type serverSettings struct {
	// ReplicaDir is where a home server keeps its replicas of the
	// cloud's folders; "" means <home>/replicas.
	ReplicaDir string `toml:"replica_dir"`
}

type gatewaySettings struct {
	// Listen is host:port of the HTTP gateway for shares; "" means on
	// (DefaultGatewayListen) for role server and off otherwise, "off"
	// means off.
	Listen string `toml:"listen"`
}

// Roles (the role key).
const (
	RoleDevice = "device" // a person's laptop, phone-class box, desktop
	RoleServer = "server" // an always-on home server: relays for the cloud's members
)

type apiSettings struct {
	Listen string `toml:"listen"`
}

type p2pSettings struct {
	Listen    []string `toml:"listen"`
	Bootstrap []string `toml:"bootstrap"`
	ConnLow   int      `toml:"conn_low"`
	ConnHigh  int      `toml:"conn_high"`
}

type storeSettings struct {
	NoSync bool `toml:"nosync"`
}

type logSettings struct {
	Level  string `toml:"level"`
	Format string `toml:"format"`
}

// DefaultSettings returns the settings of a new home.
func DefaultSettings() *Settings {
	return &Settings{
		Profile: ProfileDefault,
		Role:    RoleDevice,
		API:     apiSettings{Listen: DefaultAPIListen},
		P2P:     p2pSettings{Listen: []string{}, Bootstrap: []string{}},
		Log:     logSettings{Level: "info", Format: "text"},
		DNS:     dnslink.Config{Servers: []string{}},
	}
}

// setting is one dotted key: how to read it, parse it and describe it.
type setting struct {
	key, help string
	get       func(*Settings) string
	set       func(*Settings, string) error
}

var settingsTable = []setting{
	{"profile", `"default", "local" or "lan" (documentation address ranges only: network-namespace tests)`,
		func(s *Settings) string { return s.Profile },
		func(s *Settings, v string) error {
			switch v {
			case ProfileDefault, ProfileLocal, ProfileLAN:
				s.Profile = v
				return nil
			}
			return fmt.Errorf("must be %q, %q or %q", ProfileDefault, ProfileLocal, ProfileLAN)
		}},
	{"name", "this device's name in its cloud; empty = the host name",
		func(s *Settings) string { return s.Name },
		func(s *Settings, v string) error {
			if err := checkDeviceName(v); v != "" && err != nil {
				return err
			}
			s.Name = v
			return nil
		}},
	{"role", `"device" or "server" (a server relays for the cloud's members)`,
		func(s *Settings) string { return s.Role },
		func(s *Settings, v string) error {
			switch v {
			case RoleDevice, RoleServer:
				s.Role = v
				return nil
			case "":
				s.Role = RoleDevice
				return nil
			}
			return fmt.Errorf("must be %q or %q", RoleDevice, RoleServer)
		}},
	{"dns.zone", "the person's domain, e.g. example.org; empty = DNS features off",
		func(s *Settings) string { return s.DNS.Zone },
		func(s *Settings, v string) error {
			if v != "" && !isDomainName(v) {
				return fmt.Errorf("%q is not a domain name", v)
			}
			s.DNS.Zone = v
			return nil
		}},
	{"dns.listen", "host:port of the authoritative DNS server (UDP and TCP); empty = off",
		func(s *Settings) string { return s.DNS.Listen },
		func(s *Settings, v string) error {
			if v != "" {
				if err := checkHostPort(v, true); err != nil {
					return err
				}
			}
			s.DNS.Listen = v
			return nil
		}},
	{"dns.servers", "comma-separated upstream resolvers, host:port; empty = /etc/resolv.conf",
		func(s *Settings) string { return strings.Join(s.DNS.Servers, ",") },
		func(s *Settings, v string) error {
			l, err := parseList(v, func(x string) error { return checkHostPort(x, false) })
			if err == nil {
				s.DNS.Servers = l
			}
			return err
		}},
	{"dns.primary", "the zone's primary server for RFC 2136 updates, host[:port]; empty = not publishing",
		func(s *Settings) string { return s.DNS.Primary },
		func(s *Settings, v string) error {
			if v != "" && strings.ContainsAny(v, " /,") {
				return fmt.Errorf("want host or host:port")
			}
			s.DNS.Primary = v
			return nil
		}},
	{"dns.tsig", "the RFC 2136 update key, name:algorithm:base64secret",
		func(s *Settings) string { return s.DNS.TSIG },
		func(s *Settings, v string) error {
			if v != "" {
				if _, err := dnslink.ParseTSIG(v); err != nil {
					return err
				}
			}
			s.DNS.TSIG = v
			return nil
		}},
	{"dns.trust_anchor", "DS or DNSKEY record(s) where DNSSEC validation starts; empty = no validation",
		func(s *Settings) string { return s.DNS.TrustAnchor },
		func(s *Settings, v string) error {
			if v != "" {
				if _, err := dnslink.ParseTrustAnchor(v); err != nil {
					return err
				}
			}
			s.DNS.TrustAnchor = v
			return nil
		}},
	{"dns.rate_limit", `queries per second one client address may send to the authoritative server; 0 = 200, "off" (or -1) = no limit`,
		func(s *Settings) string {
			if s.DNS.RateLimit < 0 {
				return "off"
			}
			return strconv.FormatFloat(s.DNS.RateLimit, 'g', -1, 64)
		},
		func(s *Settings, v string) error {
			if v == "off" {
				v = "-1"
			}
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || (f < 0 && f != -1) {
				return fmt.Errorf(`want a number of queries per second, 0 for the default or "off" for no limit`)
			}
			s.DNS.RateLimit = f
			return nil
		}},
	{"gateway.listen", `host:port of the HTTP gateway serving shared items; empty = on for role server (0.0.0.0:8080, loopback in the local profile), off otherwise; "off" = off`,
		func(s *Settings) string { return s.Gateway.Listen },
		func(s *Settings, v string) error {
			if v != "" && v != GatewayOff {
				if err := checkHostPort(v, true); err != nil {
					return err
				}
			}
			s.Gateway.Listen = v
			return nil
		}},
	{"server.replica_dir", "where a home server keeps its receive-only replicas of the cloud's folders (absolute path); empty = <home>/replicas",
		func(s *Settings) string { return s.Server.ReplicaDir },
		func(s *Settings, v string) error {
			if v != "" && !filepath.IsAbs(v) {
				return fmt.Errorf("want an absolute path")
			}
			s.Server.ReplicaDir = v
			return nil
		}},
	{"api.listen", "host:port of the HTTP API, e.g. 127.0.0.1:5480",
		func(s *Settings) string { return s.API.Listen },
		func(s *Settings, v string) error {
			host, port, err := net.SplitHostPort(v)
			if err != nil {
				return fmt.Errorf("want host:port: %w", err)
			}
			if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
				return fmt.Errorf("bad port %q", port)
			}
			if host != "localhost" && net.ParseIP(host) == nil {
				return fmt.Errorf("host %q must be an IP address or localhost", host)
			}
			s.API.Listen = v
			return nil
		}},
	{"p2p.listen", "comma-separated multiaddrs; empty = profile default",
		func(s *Settings) string { return strings.Join(s.P2P.Listen, ",") },
		func(s *Settings, v string) error {
			l, err := parseList(v, func(x string) error { _, err := multiaddr.NewMultiaddr(x); return err })
			if err == nil {
				s.P2P.Listen = l
			}
			return err
		}},
	{"p2p.bootstrap", "comma-separated multiaddrs ending in /p2p/<id>; empty = profile default",
		func(s *Settings) string { return strings.Join(s.P2P.Bootstrap, ",") },
		func(s *Settings, v string) error {
			l, err := parseList(v, func(x string) error { _, err := peer.AddrInfoFromString(x); return err })
			if err == nil {
				s.P2P.Bootstrap = l
			}
			return err
		}},
	{"p2p.conn_low", "connection manager low water mark; 0 = default",
		func(s *Settings) string { return strconv.Itoa(s.P2P.ConnLow) },
		func(s *Settings, v string) error { return parseCount(v, &s.P2P.ConnLow) }},
	{"p2p.conn_high", "connection manager high water mark; 0 = default",
		func(s *Settings) string { return strconv.Itoa(s.P2P.ConnHigh) },
		func(s *Settings, v string) error { return parseCount(v, &s.P2P.ConnHigh) }},
	{"store.nosync", "true skips fsync of block writes (faster, unsafe on power loss)",
		func(s *Settings) string { return strconv.FormatBool(s.Store.NoSync) },
		func(s *Settings, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("want true or false")
			}
			s.Store.NoSync = b
			return nil
		}},
	{"log.level", "debug, info, warn or error",
		func(s *Settings) string { return s.Log.Level },
		func(s *Settings, v string) error {
			switch v {
			case "debug", "info", "warn", "error":
				s.Log.Level = v
				return nil
			}
			return fmt.Errorf("want debug, info, warn or error")
		}},
	{"log.format", "text or json",
		func(s *Settings) string { return s.Log.Format },
		func(s *Settings, v string) error {
			switch v {
			case "text", "json":
				s.Log.Format = v
				return nil
			}
			return fmt.Errorf("want text or json")
		}},
}

// SettingKeys returns every valid dotted key, sorted.
func SettingKeys() []string {
	keys := make([]string, len(settingsTable))
	for i, st := range settingsTable {
		keys[i] = st.key
	}
	sort.Strings(keys)
	return keys
}

// EnvVar returns the environment variable that overrides key:
// PCNODE_ followed by the key in upper case with dots as underscores
// ("api.listen" → PCNODE_API_LISTEN).
func EnvVar(key string) string {
	return "PCNODE_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

func lookupSetting(key string) (*setting, error) {
	for i := range settingsTable {
		if settingsTable[i].key == key {
			return &settingsTable[i], nil
		}
	}
	return nil, fmt.Errorf("unknown config key %q (valid keys: %s)", key, strings.Join(SettingKeys(), ", "))
}

// Get returns the value of a dotted key as `config set` would accept it;
// lists are comma-separated.
func (s *Settings) Get(key string) (string, error) {
	st, err := lookupSetting(key)
	if err != nil {
		return "", fmt.Errorf("node: config get: %w", err)
	}
	return st.get(s), nil
}

// Set validates value and stores it under a dotted key. An unknown key or
// a bad value is an error naming the valid keys or the expected form; s is
// unchanged then.
func (s *Settings) Set(key, value string) error {
	st, err := lookupSetting(key)
	if err != nil {
		return fmt.Errorf("node: config set: %w", err)
	}
	if err := st.set(s, strings.TrimSpace(value)); err != nil {
		return fmt.Errorf("node: config set %s=%q: %w", key, value, err)
	}
	return nil
}

// ApplyEnv overrides settings from environment variables named by EnvVar
// (PCNODE_API_LISTEN, PCNODE_P2P_LISTEN, ...). getenv is os.Getenv when nil.
// A set but invalid variable is an error.
func (s *Settings) ApplyEnv(getenv func(string) string) error {
	if getenv == nil {
		getenv = os.Getenv
	}
	for _, st := range settingsTable {
		v := getenv(EnvVar(st.key))
		if v == "" {
			continue
		}
		if err := st.set(s, strings.TrimSpace(v)); err != nil {
			return fmt.Errorf("node: config: %s=%q: %w", EnvVar(st.key), v, err)
		}
	}
	return nil
}

// validate re-checks every key, so a hand-edited file with a bad value is
// reported at load, naming the key.
func (s *Settings) validate() error {
	for _, st := range settingsTable {
		if err := st.set(s, st.get(s)); err != nil {
			return fmt.Errorf("%s=%q: %w", st.key, st.get(s), err)
		}
	}
	return nil
}

// LoadSettings reads <home>/config.toml. Keys missing from the file keep
// their defaults; unknown keys and bad values are errors. It does not apply
// environment overrides (see ApplyEnv).
func LoadSettings(home string) (*Settings, error) {
	p := filepath.Join(home, ConfigFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("node: load config %s: %w (run pcnode init)", home, ErrNotInitialized)
	}
	if err != nil {
		return nil, fmt.Errorf("node: load config: %w", err)
	}
	s, err := ParseSettings(b)
	if err != nil {
		return nil, fmt.Errorf("node: load config %s: %w", p, err)
	}
	return s, nil
}

// ParseSettings decodes config.toml content over the defaults.
func ParseSettings(b []byte) (*Settings, error) {
	s := DefaultSettings()
	md, err := toml.Decode(string(b), s)
	if err != nil {
		return nil, err
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("unknown key %q (valid keys: %s)", und[0].String(), strings.Join(SettingKeys(), ", "))
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// Save writes s to <home>/config.toml atomically (mode 0600).
func (s *Settings) Save(home string) error {
	var buf bytes.Buffer
	buf.WriteString("# pcnode configuration; keys are documented in docs/CONFIG.md.\n")
	buf.WriteString("# Change with: pcnode config set KEY VALUE\n\n")
	if err := toml.NewEncoder(&buf).Encode(s); err != nil {
		return fmt.Errorf("node: save config: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(home, ConfigFile), buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("node: save config: %w", err)
	}
	return nil
}

func parseList(v string, check func(string) error) ([]string, error) {
	out := []string{}
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' }) {
		if err := check(f); err != nil {
			return nil, fmt.Errorf("%q: %w", f, err)
		}
		out = append(out, f)
	}
	return out, nil
}

// checkHostPort accepts host:port with an IP or a host name; port 0 only
// when zeroOK (a listen address).
func checkHostPort(v string, zeroOK bool) error {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return fmt.Errorf("want host:port: %w", err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 || p == 0 && !zeroOK {
		return fmt.Errorf("bad port %q", port)
	}
	if host == "" && !zeroOK {
		return fmt.Errorf("missing host")
	}
	if host != "" && net.ParseIP(host) == nil && !isDomainName(host) {
		return fmt.Errorf("bad host %q", host)
	}
	return nil
}

// isDomainName accepts host names as people type them: dot-separated
// labels of 1 to 63 letters, digits, '-' or '_', an optional final dot,
// at most 253 characters. miekg/dns accepts far more (any byte), which is
// right for DNS data but not for a setting.
func isDomainName(v string) bool {
	v = strings.TrimSuffix(v, ".")
	if v == "" || len(v) > 253 {
		return false
	}
	for _, l := range strings.Split(v, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// checkDeviceName applies the cloud's rules for a member's name (docs/CLOUD.md):
// 1 to 64 bytes of printable UTF-8 without surrounding space.
func checkDeviceName(v string) error {
	switch {
	case v == "":
		return fmt.Errorf("empty name")
	case len(v) > cloud.MaxNameLen:
		return fmt.Errorf("name longer than %d bytes", cloud.MaxNameLen)
	case !utf8.ValidString(v):
		return fmt.Errorf("name is not UTF-8")
	case strings.TrimSpace(v) != v:
		return fmt.Errorf("name %q has surrounding space", v)
	}
	for _, c := range v {
		if !unicode.IsPrint(c) {
			return fmt.Errorf("name %q has a non-printable character", v)
		}
	}
	if _, err := peer.Decode(v); err == nil {
		return fmt.Errorf("name %q looks like a peer ID", v)
	}
	return nil
}

func parseCount(v string, dst *int) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > 1_000_000 {
		return fmt.Errorf("want a whole number from 0 to 1000000")
	}
	*dst = n
	return nil
}
