// Package dnslink is pcnode's DNS identity: it parses, resolves, validates
// and publishes the records that tie the person's domain to their cloud,
// and can serve that domain itself, signed with DNSSEC.
//
// # Records
//
// Three kinds of TXT record, each with a parser, a formatter and a fuzz
// target:
//
//   - DNSLink at _dnslink.<domain>: "dnslink=/ipfs/<cid>[/path]",
//     "/ipns/<name>" or any other namespace (Link, ParseDNSLink,
//     ChooseDNSLink, which picks the lexicographically first valid value
//     as the DNSLink specification asks).
//   - dnsaddr at _dnsaddr.<domain>: "dnsaddr=<multiaddr>", usually ending
//     in /p2p/<peer ID> (ParseDNSAddr, FormatDNSAddr).
//   - pcnode's own record at _pcnode.<domain>: "pcnode=v1 cloud=<cloud ID>"
//     (PCNode, ParsePCNode), naming the cloud the domain belongs to.
//
// Records is the typed set a node keeps in its zone; Records.RRs turns it
// into resource records.
//
// # Resolving
//
// A Resolver asks configured servers (or /etc/resolv.conf's), bounds
// everything a hostile server controls (CNAME chains and loops, nested
// /dnsaddr depth, records per answer, TXT size; each breach an error
// wrapping ErrLimit) and marks each result Validated when DNSSEC proves it
// from the configured trust anchor. Under the anchor a result that does not
// validate is an error wrapping ErrBogus, never a silently unvalidated
// answer.
//
// # Publishing to a primary server
//
// A Publisher keeps the records in a zone hosted elsewhere (Knot, BIND,
// PowerDNS) current with RFC 2136 updates signed with TSIG: it reads the
// zone (AXFR), computes the difference for the names pcnode owns and sends
// one atomic update. Refusals wrap ErrUpdateRefused and say what to fix.
//
// # Serving the zone
//
// A Zone holds the record sets and signs them online (one ECDSA P-256 key,
// precomputed NSEC chain for authenticated denial); a Server answers for it
// over UDP and TCP, refuses everything outside the zone, truncates large
// UDP answers and rate-limits each client. Zone.DS is the record the parent
// zone publishes. LoadTest measures a server.
//
// The package imports none of pcnode's other packages; the node wires it
// from its dns.* settings (Config) and the roster. docs/DNS.md is the
// operator's guide.
package dnslink
