package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pcnode/pcnode/node"
	"github.com/pcnode/pcnode/node/api"
)

func (a *app) dnsCmd() *cobra.Command {
	ds := &cobra.Command{
		Use:   "ds",
		Short: "Print the DS record to give the parent zone (the registrar)",
		Long: `Print the DS record of the zone this node serves (dns.zone), to enter at
the registrar or parent zone so that resolvers can validate the zone's
DNSSEC signatures. The same line is a valid dns.trust_anchor for devices
that should validate the zone before it is delegated. With --json it also
gives the DNSKEY and the key tag. Needs dns.zone; works without a daemon.`,
		Args: args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			b, done, err := a.backend(ctx, false)
			if err != nil {
				return err
			}
			defer done()
			d, err := b.DNSDS(ctx)
			if err != nil {
				return dnsHint(err)
			}
			return a.print(d, func(w io.Writer) { fmt.Fprintln(w, d.DS) })
		},
	}
	publish := &cobra.Command{
		Use:   "publish",
		Short: "Update the zone's primary server (RFC 2136, TSIG) with the cloud's records",
		Long: `Send the cloud's records (_pcnode, _dnsaddr for reachable devices, share
names) to the zone's primary DNS server as an RFC 2136 dynamic update
signed with TSIG, and remove the stale ones that pcnode owns. It prints
what was added and removed.

Needs dns.zone, dns.primary and dns.tsig (name:algorithm:base64secret),
and the daemon (it knows the addresses the devices are reachable at).`,
		Args: args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			b, done, err := a.backend(ctx, false)
			if err != nil {
				return err
			}
			defer done()
			res, err := b.DNSPublish(ctx)
			if errors.Is(err, api.ErrOffline) {
				return fmt.Errorf("%w: dns publish needs the daemon (it publishes the addresses the devices are reachable at): start it with %s%s daemon", err, progName(), a.homeFlag())
			}
			if err != nil {
				return dnsHint(err)
			}
			if res.Added == nil {
				res.Added = []string{}
			}
			if res.Removed == nil {
				res.Removed = []string{}
			}
			return a.print(res, func(w io.Writer) {
				if len(res.Added) == 0 && len(res.Removed) == 0 {
					fmt.Fprintf(w, "%s at %s is up to date\n", res.Zone, res.Primary)
					return
				}
				for _, r := range res.Removed {
					fmt.Fprintf(w, "- %s\n", r)
				}
				for _, r := range res.Added {
					fmt.Fprintf(w, "+ %s\n", r)
				}
				fmt.Fprintf(w, "updated %s at %s: %d added, %d removed\n", res.Zone, res.Primary, len(res.Added), len(res.Removed))
			})
		},
	}
	var listen string
	serve := &cobra.Command{
		Use:   "serve",
		Short: "Run the daemon as the authoritative, DNSSEC-signed server of dns.zone",
		Long: `Run the daemon (exactly as pcnode daemon) and make sure it serves the zone:
it refuses to start unless dns.zone is set and dns.listen is set (or given
with --listen, which overrides the config for this run only).

Any daemon whose config has dns.listen serves the zone; this command only
checks that it will. The server answers over UDP and TCP for dns.zone and
nothing else (no recursion), signed with the zone's key: give the parent
zone the record 'pcnode dns ds' prints.`,
		Args: args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			o := daemonOptions{check: func(s *node.Settings) error {
				zone, _ := s.Get("dns.zone")
				addr, _ := s.Get("dns.listen")
				var missing []string
				if zone == "" {
					missing = append(missing, "dns.zone (e.g. pcnode config set dns.zone example.org)")
				}
				if addr == "" {
					missing = append(missing, "dns.listen (e.g. pcnode config set dns.listen 0.0.0.0:53, or --listen)")
				}
				if len(missing) > 0 {
					return fmt.Errorf("dns serve needs %s", strings.Join(missing, " and "))
				}
				return nil
			}}
			if listen != "" {
				o.env = map[string]string{node.EnvVar("dns.listen"): listen}
			}
			return a.runDaemon(cmd.Context(), o)
		},
	}
	serve.Flags().StringVar(&listen, "listen", "", "host:port to answer DNS on, overriding dns.listen for this run")
	return group("dns", "The person's domain: DS record, RFC 2136 publishing, authoritative server", ds, publish, serve)
}

// dnsHint adds the setting to change to a missing-setting error.
func dnsHint(err error) error {
	msg := err.Error()
	if !errors.Is(err, api.ErrConflict) {
		return err
	}
	for _, k := range []struct{ key, example string }{
		{"dns.zone", "pcnode config set dns.zone example.org"},
		{"dns.primary", "pcnode config set dns.primary ns1.example.net:53"},
		{"dns.tsig", "pcnode config set dns.tsig NAME:hmac-sha256:BASE64SECRET"},
	} {
		if strings.Contains(msg, k.key) && !strings.Contains(msg, "pcnode config set") {
			return fmt.Errorf("%w (set it with: %s)", err, k.example)
		}
	}
	return err
}
