package dnslink

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/miekg/dns"
)

// Key is a zone's DNSSEC signing key: one ECDSA P-256 key (algorithm 13)
// used as a combined key-signing and zone-signing key (a CSK, flags 257).
// A single key keeps the parent's DS record stable for the key's lifetime,
// which is what a person pasting a DS into a registrar's form wants.
//
// The caller generates the key once (GenerateKey), stores Marshal's output
// in the node's home and loads it with ParseKey on every start: a new key
// means a new DS at the parent.
type Key struct {
	priv *ecdsa.PrivateKey
}

// GenerateKey returns a new random key.
func GenerateKey() (*Key, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("dnslink: generate key: %w", err)
	}
	return &Key{priv: priv}, nil
}

// Marshal returns the private key as a PEM "PRIVATE KEY" block (PKCS #8).
// Keep it secret: it signs the zone.
func (k *Key) Marshal() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.priv)
	if err != nil {
		return nil, fmt.Errorf("dnslink: marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseKey parses Marshal's output.
func ParseKey(data []byte) (*Key, error) {
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, errors.New("dnslink: parse key: no PEM PRIVATE KEY block")
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("dnslink: parse key: %w", err)
	}
	priv, ok := k.(*ecdsa.PrivateKey)
	if !ok || priv.Curve != elliptic.P256() {
		return nil, errors.New("dnslink: parse key: not an ECDSA P-256 key")
	}
	return &Key{priv: priv}, nil
}

// DNSKEY returns the public key as the DNSKEY record of zone (flags 257:
// zone key and secure entry point), with the given TTL.
func (k *Key) DNSKEY(zone string, ttl uint32) *dns.DNSKEY {
	pub, err := k.priv.PublicKey.ECDH()
	if err != nil {
		panic("dnslink: P-256 key without ECDH form: " + err.Error()) // cannot happen for P-256
	}
	raw := pub.Bytes() // 0x04 || X || Y
	return &dns.DNSKEY{
		Hdr:       dns.RR_Header{Name: dns.CanonicalName(zone), Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: ttl},
		Flags:     dns.ZONE | dns.SEP,
		Protocol:  3,
		Algorithm: dns.ECDSAP256SHA256,
		PublicKey: base64.StdEncoding.EncodeToString(raw[1:]),
	}
}

// DS returns the DS record (SHA-256 digest) that the parent zone publishes
// for zone to delegate trust to this key.
func (k *Key) DS(zone string) *dns.DS {
	ds := k.DNSKEY(zone, 3600).ToDS(dns.SHA256)
	return ds
}
