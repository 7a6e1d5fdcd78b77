// Package dnslink parses, resolves, validates and publishes DNSLink and
// dnsaddr records, and can serve the person's zone authoritatively.
//
// It imports none of pcnode's packages.
package dnslink
