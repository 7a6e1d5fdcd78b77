package dnslink

import (
	"fmt"
	"log/slog"
)

// Config mirrors the dns.* keys of pcnode's configuration file, so the
// node can build every component of this package from one struct. The
// zero value resolves through /etc/resolv.conf without validation and
// neither serves nor publishes.
type Config struct {
	// Zone is the person's domain, e.g. "example.org" (dns.zone).
	Zone string `toml:"zone" json:"zone"`
	// Listen is where the authoritative server answers, host:port
	// (dns.listen); "" means the server is off.
	Listen string `toml:"listen" json:"listen"`
	// Servers are the upstream resolvers, host:port (dns.servers); empty
	// means /etc/resolv.conf.
	Servers []string `toml:"servers" json:"servers"`
	// Primary is the zone's primary server for RFC 2136 updates, host:port
	// (dns.primary); "" means publishing is off.
	Primary string `toml:"primary" json:"primary"`
	// TSIG is the update key, "name:algorithm:base64secret" (dns.tsig).
	TSIG string `toml:"tsig" json:"tsig"`
	// TrustAnchor is the DS or DNSKEY text where validation starts
	// (dns.trust_anchor); "" means no validation.
	TrustAnchor string `toml:"trust_anchor" json:"trust_anchor"`
	// RateLimit is the queries per second one client address may send to
	// the authoritative server (dns.rate_limit); 0 means the server's
	// default (200), negative turns limiting off.
	RateLimit float64 `toml:"rate_limit" json:"rate_limit"`
}

// ResolverConfig returns the resolver's configuration.
func (c Config) ResolverConfig(log *slog.Logger) ResolverConfig {
	return ResolverConfig{Servers: c.Servers, TrustAnchor: c.TrustAnchor, Logger: log}
}

// PublisherConfig returns the publisher's configuration; it fails when
// dns.tsig does not parse.
func (c Config) PublisherConfig(log *slog.Logger) (PublisherConfig, error) {
	k, err := ParseTSIG(c.TSIG)
	if err != nil {
		return PublisherConfig{}, err
	}
	return PublisherConfig{Zone: c.Zone, Primary: c.Primary, TSIG: k, Logger: log}, nil
}

// ZoneConfig returns the configuration of the served zone, signed with key
// (nil serves it unsigned).
func (c Config) ZoneConfig(key *Key) ZoneConfig { return ZoneConfig{Zone: c.Zone, Key: key} }

// ServerConfig returns the authoritative server's configuration; it fails
// when dns.listen is empty.
func (c Config) ServerConfig(log *slog.Logger) (ServerConfig, error) {
	if c.Listen == "" {
		return ServerConfig{}, fmt.Errorf("dnslink: server config: dns.listen is empty")
	}
	return ServerConfig{Listen: c.Listen, RateLimit: c.RateLimit, Logger: log}, nil
}
