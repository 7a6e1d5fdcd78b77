package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pcnode/pcnode/node"
	"github.com/pcnode/pcnode/node/api"
	"github.com/pcnode/pcnode/node/cloud"
)

// errNoCloudHint explains api.ErrNotFound from Cloud and Devices.
const errNoCloudHint = "this device belongs to no cloud: join one with pcnode join CODE (an admin device prints the code with pcnode invite)"

func (a *app) cloudCmd() *cobra.Command {
	show := &cobra.Command{
		Use:   "show",
		Short: "Show this device's cloud: ID, this device's name and role, roster version",
		Args:  args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			b, done, err := a.backend(ctx, false)
			if err != nil {
				return err
			}
			defer done()
			ci, err := b.Cloud(ctx)
			if err != nil {
				return noCloud(err)
			}
			return a.print(ci, func(w io.Writer) { printCloud(w, ci) })
		},
	}
	return group("cloud", "Show the cloud (the set of your devices) this device belongs to", show)
}

// noCloud words the error of a cloud operation on a home without a cloud
// without the node's prefix.
func noCloud(err error) error {
	if errors.Is(err, api.ErrNotFound) && strings.Contains(err.Error(), "belongs to no cloud") {
		return errors.New(errNoCloudHint)
	}
	return err
}

func printCloud(w io.Writer, ci api.CloudInfo) {
	role := ci.Role
	if ci.Admin {
		role += ", admin (holds the cloud key)"
	}
	state := "online"
	if !ci.Online {
		state = "offline (read from disk; no daemon running)"
	}
	fmt.Fprintf(w, "cloud    %s\n", ci.ID)
	fmt.Fprintf(w, "device   %s (%s)\n", ci.Device, ci.PeerID)
	fmt.Fprintf(w, "role     %s\n", role)
	if ci.Revoked {
		fmt.Fprintf(w, "REVOKED  this device has been revoked from the cloud\n")
	}
	fmt.Fprintf(w, "roster   version %d, %d member(s), %d revoked\n", ci.Version, ci.Members, ci.RevokedCount)
	if ci.Admin {
		fmt.Fprintf(w, "invites  %d pending\n", ci.PendingInvites)
	}
	fmt.Fprintf(w, "state    %s\n", state)
}

type deviceList struct {
	Devices []api.Device `json:"devices"`
}

func (a *app) devicesCmd() *cobra.Command {
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the cloud's devices: name, peer, role, online, how found, path (direct, or relayed via which device), latency, why not direct",
		Long: `List every device of the cloud, this one first, revoked ones included.

ONLINE is "self" for this device, "yes" while a connection is open,
"revoked" for a revoked device. FOUND says how the daemon found it (mdns,
dht, dns, remembered, manual, inbound), PATH whether the connection is
direct or relayed, LATENCY the average ping. Without a daemon the list
comes from the roster on disk and the connection columns are empty.`,
		Args: args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			b, done, err := a.backend(ctx, false)
			if err != nil {
				return err
			}
			defer done()
			ds, err := b.Devices(ctx)
			if err != nil {
				return noCloud(err)
			}
			if ds == nil {
				ds = []api.Device{}
			}
			return a.print(deviceList{Devices: ds}, func(w io.Writer) { printDevices(w, ds) })
		},
	}
	rename := &cobra.Command{
		Use:   "rename NAME NEWNAME",
		Short: "Rename a device of the cloud (NAME may be a peer ID; needs an admin device)",
		Args:  args("NAME", "NEWNAME"),
		RunE: func(cmd *cobra.Command, argv []string) error {
			ctx := cmd.Context()
			b, done, err := a.backend(ctx, false)
			if err != nil {
				return err
			}
			defer done()
			d, err := b.Rename(ctx, argv[0], argv[1])
			if err != nil {
				return noCloud(err)
			}
			return a.print(d, func(w io.Writer) {
				fmt.Fprintf(w, "renamed %s to %s (%s)\n", argv[0], d.Name, d.ID)
			})
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a device: every member disconnects and refuses it (needs an admin device)",
		Long: `Revoke a device (by name or peer ID): the roster is re-signed without it.
Members learn of it when they next connect to this device (at once, for
those connected to a running daemon), then disconnect the revoked device
and refuse it from then on. A revoked device cannot come back, not even
with an old invite: invite it again under a new key (pcnode init on it).`,
		Args: args("NAME"),
		RunE: func(cmd *cobra.Command, argv []string) error {
			ctx := cmd.Context()
			b, done, err := a.backend(ctx, false)
			if err != nil {
				return err
			}
			defer done()
			d, err := b.Revoke(ctx, argv[0])
			if err != nil {
				return noCloud(err)
			}
			return a.print(d, func(w io.Writer) {
				fmt.Fprintf(w, "revoked %s (%s)\n", d.Name, d.ID)
			})
		},
	}
	return group("devices", "List, rename and revoke the cloud's devices", ls, rename, revoke)
}

func printDevices(w io.Writer, ds []api.Device) {
	// A relay is named by its device name when it is one of the cloud's
	// (a home server), else by its peer ID.
	names := map[string]string{}
	for _, d := range ds {
		names[d.ID] = d.Name
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPEER\tROLE\tONLINE\tFOUND\tPATH\tLATENCY\tWHY NOT DIRECT")
	for _, d := range ds {
		role := d.Role
		if d.Admin {
			role += "+admin"
		}
		online := "no"
		switch {
		case d.Self:
			online = "self"
		case d.Revoked:
			online = "revoked"
		case d.Connected:
			online = "yes"
		}
		found := dash(strings.Join(d.Sources, ","))
		path := dash(d.Path)
		if d.Relay != "" {
			relay := d.Relay
			if n, ok := names[relay]; ok && n != "" {
				relay = n
			}
			path += " via " + relay
		}
		latency := "-"
		if d.LatencyMS > 0 {
			latency = fmt.Sprintf("%.1fms", d.LatencyMS)
		}
		why := "-"
		if !d.Self && !d.Revoked && d.Path != "direct" && d.WhyNotDirect != "" {
			why = d.WhyNotDirect
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Name, d.ID, role, online, found, path, latency, why)
	}
	tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (a *app) inviteCmd() *cobra.Command {
	var req api.InviteRequest
	var ttl time.Duration
	c := &cobra.Command{
		Use:   "invite",
		Short: "Print a single-use code (and a QR) with which a new device joins the cloud",
		Long: `Print a single-use invite code, and on a terminal a QR code of it. On the
new device run: pcnode join CODE. The code holds this device's addresses
and a random token; it is valid once, until it expires (--ttl, default
15m, at most 24h). --admin lets the new device ask for the cloud key
(pcnode join --admin), so that it too can invite and revoke.

Invite needs the daemon running on this (admin) device: the new device
dials it to join. With --json it prints {"code", "expires", ...} and no QR.`,
		Args: args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if ttl <= 0 || ttl > 24*time.Hour {
				return usageErrorf("--ttl %v: want more than 0 and at most 24h", ttl)
			}
			req.TTL = ttl.String()
			b, done, err := a.backend(ctx, true)
			if errors.Is(err, errNeedsDaemon) {
				return fmt.Errorf("invite needs the daemon running on this device (the new device dials it to join): start it with %s%s daemon", progName(), a.homeFlag())
			}
			if err != nil {
				return err
			}
			defer done()
			res, err := b.Invite(ctx, req)
			if err != nil {
				return noCloud(err)
			}
			return a.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "%s\n", res.Code)
				if isTerminal(a.stdout) {
					if err := cloud.WriteQR(w, res.Code); err != nil {
						fmt.Fprintf(a.stderr, "pcnode: no QR: %v\n", err)
					}
				}
				kind := "device"
				if res.Admin {
					kind = "device (it may join as admin)"
				}
				fmt.Fprintf(w, "single use, for one %s, until %s (%s)\n", kind,
					res.Expires.Local().Format("15:04:05 MST"), time.Until(res.Expires).Round(time.Second))
				fmt.Fprintf(w, "on the new device: pcnode join %s\n", res.Code)
			})
		},
	}
	c.Flags().DurationVar(&ttl, "ttl", 15*time.Minute, "how long the code stays valid (at most 24h)")
	c.Flags().BoolVar(&req.Admin, "admin", false, "let the new device become an admin (receive the cloud key)")
	return c
}

type joinResult struct {
	api.CloudInfo
	Home        string `json:"home"`
	Initialized bool   `json:"initialized"` // join created the home
}

func (a *app) joinCmd() *cobra.Command {
	var req api.JoinRequest
	var profile, apiListen string
	c := &cobra.Command{
		Use:   "join CODE",
		Short: "Join a cloud with an invite code from pcnode invite",
		Long: `Join this device to a cloud with a code that 'pcnode invite' printed on
one of its devices (which must be running its daemon and reachable).

The home must not belong to a cloud yet. If it does not exist, join
creates it first (as 'pcnode init --no-cloud' would, with --profile and
--api-listen), so on a new device 'pcnode join CODE' is the only step
before 'pcnode daemon'. A home made by plain 'pcnode init' already has a
cloud of its own: create the home with 'pcnode init --no-cloud' instead.

--name is this device's name in the cloud (default: the name setting,
else the host name). --admin asks for the cloud key; the invite must have
been made with --admin. The inviter refuses a used, expired or unknown
code and says why.

With a daemon running on this home, the daemon joins; otherwise join
starts a short-lived host of its own.`,
		Args: args("CODE"),
		RunE: func(cmd *cobra.Command, argv []string) error {
			ctx := cmd.Context()
			req.Code = strings.TrimSpace(argv[0])
			// Check the code before creating anything: a typo or an expired
			// code needs no network and leaves no half-made home behind.
			if _, err := cloud.DecodeInvite(req.Code, time.Now()); err != nil {
				return inviteError(err)
			}
			home, err := a.homeDir()
			if err != nil {
				return err
			}
			created, err := a.joinHome(cmd, home, req, profile, apiListen)
			if err != nil {
				return err
			}
			b, done, err := a.backend(ctx, false)
			if err != nil {
				return a.undoHome(home, created, err)
			}
			ci, err := b.Join(ctx, req)
			done() // before undoHome, which may remove the home
			if err != nil {
				return a.undoHome(home, created, joinError(err))
			}
			res := joinResult{CloudInfo: ci, Home: home, Initialized: created}
			return a.print(res, func(w io.Writer) {
				if created {
					fmt.Fprintf(w, "initialised pcnode home %s\n", home)
				}
				role := ci.Role
				if ci.Admin {
					role += ", admin"
				}
				fmt.Fprintf(w, "joined cloud %s as %s (%s)\n", ci.ID, ci.Device, role)
				fmt.Fprintf(w, "the cloud has %d device(s)\n", ci.Members)
				if !ci.Online {
					fmt.Fprintf(w, "next: %s%s daemon\n", progName(), a.homeFlag())
				}
			})
		},
	}
	f := c.Flags()
	f.StringVar(&req.Name, "name", "", "this device's name in the cloud (default: the name setting, else the host name)")
	f.StringVar(&req.Role, "role", "", `"device" or "server" (default: the role setting)`)
	f.BoolVar(&req.Admin, "admin", false, "ask for the cloud key (the invite must allow it)")
	f.StringVar(&profile, "profile", node.ProfileDefault, "profile of the home join creates: local (loopback only) or default")
	f.StringVar(&apiListen, "api-listen", "", "api.listen of the home join creates (default "+node.DefaultAPIListen+")")
	return c
}

// joinHome makes sure home exists for join: a missing one is created
// without a cloud (created is true); an existing one must agree with
// --profile and --api-listen when they are given.
func (a *app) joinHome(cmd *cobra.Command, home string, req api.JoinRequest, profile, apiListen string) (created bool, err error) {
	s, err := node.LoadSettings(home)
	if errors.Is(err, node.ErrNotInitialized) {
		_, serr := os.Stat(home)
		created = errors.Is(serr, os.ErrNotExist)
		opts := node.InitOptions{Profile: profile, APIListen: apiListen, Name: req.Name, Role: req.Role, NoCloud: true}
		if err := node.Init(home, opts); err != nil {
			return false, a.undoHome(home, created, err)
		}
		return created, nil
	}
	if err != nil {
		return false, err
	}
	for _, f := range []struct{ flag, key, want string }{{"profile", "profile", profile}, {"api-listen", "api.listen", apiListen}} {
		if have, _ := s.Get(f.key); cmd.Flags().Changed(f.flag) && have != f.want {
			return false, usageErrorf("--%s %s: the home %s exists with %s %s (--%s applies only when join creates the home; see pcnode config set)",
				f.flag, f.want, home, f.key, have, f.flag)
		}
	}
	return false, nil
}

// undoHome removes a home that join created when the join failed, so the
// next try starts afresh (and a mistake leaves nothing behind); it
// returns err.
func (a *app) undoHome(home string, created bool, err error) error {
	if created {
		if rerr := os.RemoveAll(home); rerr != nil {
			fmt.Fprintf(a.stderr, "pcnode: remove %s: %v\n", home, rerr)
		}
	}
	return err
}

// inviteError explains a code refused before dialling.
func inviteError(err error) error {
	switch {
	case errors.Is(err, cloud.ErrInviteExpired):
		return fmt.Errorf("%w: ask for a new code (pcnode invite on an admin device)", err)
	case errors.Is(err, cloud.ErrInvalid):
		return fmt.Errorf("%w: check that the code was copied whole, or ask for a new one", err)
	}
	return err
}

// joinError explains the refusals of a join, whichever side found them
// (through the API only the message survives, so it matches on text).
func joinError(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, node.ErrHasCloud.Error()):
		return fmt.Errorf("%w; or join from a new home: pcnode --home DIR join CODE", err)
	case strings.Contains(msg, cloud.ErrInviteUsed.Error()),
		strings.Contains(msg, cloud.ErrInviteExpired.Error()),
		strings.Contains(msg, cloud.ErrInviteUnknown.Error()):
		return fmt.Errorf("%w: ask for a new code (pcnode invite on an admin device)", err)
	}
	return err
}

// cloudStatus is status with the device's name in its cloud.
type cloudStatus struct {
	api.Status
	Device string `json:"device,omitempty"` // this device's name in its cloud
}

// withCloud fills in the device name when the node belongs to a cloud.
func withCloud(ctx context.Context, b api.Backend, st api.Status) cloudStatus {
	cs := cloudStatus{Status: st}
	if st.Cloud == "" {
		return cs
	}
	if ci, err := b.Cloud(ctx); err == nil {
		cs.Device = ci.Device
	}
	return cs
}
