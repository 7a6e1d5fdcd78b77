package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/miekg/dns"
	"github.com/multiformats/go-multiaddr"

	"github.com/pcnode/pcnode/dnslink"
	"github.com/pcnode/pcnode/node/api"
)

// newHomeWith is newHome with init options and settings to apply.
func newHomeWith(t *testing.T, opts InitOptions, set map[string]string) string {
	t.Helper()
	home := filepath.Join(t.TempDir(), "home")
	opts.Profile, opts.APIListen = ProfileLocal, "127.0.0.1:0"
	if err := Init(home, opts); err != nil {
		t.Fatal(err)
	}
	configure(t, home, set)
	return home
}

func configure(t *testing.T, home string, set map[string]string) {
	t.Helper()
	s, err := LoadSettings(home)
	if err != nil {
		t.Fatal(err)
	}
	set["store.nosync"] = "true"
	for k, v := range set {
		if err := s.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Save(home); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds or the deadline passes; cond returns
// what it saw, for the failure message.
func waitFor(t *testing.T, what string, d time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last saw %s", d, what, saw)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func device(ds []api.Device, name string) (api.Device, bool) {
	i := slices.IndexFunc(ds, func(d api.Device) bool { return d.Name == name })
	if i < 0 {
		return api.Device{}, false
	}
	return ds[i], true
}

// queryA returns the A records of name at the DNS server at addr.
func queryA(t *testing.T, addr, name string) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	c := &dns.Client{Timeout: 2 * time.Second}
	r, _, err := c.ExchangeContext(t.Context(), m, addr)
	if err != nil {
		t.Fatalf("query %s: %v", name, err)
	}
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	slices.Sort(out)
	return out
}

// queryTXT asks the DNS server at addr for the TXT records of name, with
// the DO bit, and returns their values and whether an RRSIG came along.
func queryTXT(t *testing.T, addr, name string) ([]string, bool) {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeTXT)
	m.SetEdns0(4096, true)
	c := &dns.Client{Timeout: 2 * time.Second}
	r, _, err := c.ExchangeContext(t.Context(), m, addr)
	if err != nil {
		t.Fatalf("query %s: %v", name, err)
	}
	var out []string
	signed := false
	for _, rr := range r.Answer {
		switch v := rr.(type) {
		case *dns.TXT:
			out = append(out, dnslink.TXTValue(v))
		case *dns.RRSIG:
			signed = true
		}
	}
	slices.Sort(out)
	return out, signed
}

func dnsaddrPeers(t *testing.T, addr, zone string) map[string]bool {
	txts, _ := queryTXT(t, addr, "_dnsaddr."+zone)
	out := map[string]bool{}
	for _, v := range txts {
		ma, err := dnslink.ParseDNSAddr(v)
		if err != nil {
			t.Fatalf("bad dnsaddr record %q: %v", v, err)
		}
		ai, err := peer.AddrInfoFromP2pAddr(ma)
		if err != nil {
			t.Fatalf("dnsaddr record %q has no /p2p/: %v", v, err)
		}
		out[ai.ID.String()] = true
	}
	return out
}

// TestCloudTwoDevices is the pairing story on loopback: A creates a cloud
// and serves its zone; B joins with A's invite and finds A through that
// zone alone (DHT and mDNS are off in the local profile); both list each
// other; A's zone lists both; A revokes B, which is disconnected, cannot
// come back and leaves the zone.
func TestCloudTwoDevices(t *testing.T) {
	const zone = "example.test."
	homeA := newHomeWith(t, InitOptions{Name: "a"}, map[string]string{"dns.zone": zone, "dns.listen": "127.0.0.1:0"})
	a := startNode(t, homeA, false)
	ctx := t.Context()
	ca, err := api.DialHome(homeA)
	if err != nil {
		t.Fatal(err)
	}

	// The cloud Init made.
	ci, err := ca.Cloud(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ci.ID, "k51") || ci.Device != "a" || !ci.Admin || ci.Members != 1 || ci.Version != 1 || !ci.Online || ci.PeerID != a.ID().String() {
		t.Fatalf("cloud %+v", ci)
	}
	st, err := ca.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Cloud != ci.ID || st.DNS == "" {
		t.Fatalf("status cloud %q dns %q, want %q and an address", st.Cloud, st.DNS, ci.ID)
	}

	// The zone names the cloud and A, signed.
	txts, signed := queryTXT(t, st.DNS, "_pcnode."+zone)
	if want := []string{"pcnode=v1 cloud=" + ci.ID}; !slices.Equal(txts, want) || !signed {
		t.Fatalf("_pcnode TXT = %q (signed %v), want %q signed", txts, signed, want)
	}
	txts, _ = queryTXT(t, st.DNS, "_dnsaddr."+zone)
	for _, a := range st.Addrs {
		if !slices.Contains(txts, "dnsaddr="+a) {
			t.Errorf("_dnsaddr TXT %q lacks A's address %s", txts, a)
		}
	}
	// A's device name carries its address (local profile: loopback).
	if ips := queryA(t, st.DNS, "a."+zone); !slices.Equal(ips, []string{"127.0.0.1"}) {
		t.Errorf("A records of a.%s = %q, want [127.0.0.1]", zone, ips)
	}

	// The DS from the API validates the DNSKEY the server serves.
	dsr, err := ca.DNSDS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rr, err := dns.NewRR(dsr.DS)
	if err != nil {
		t.Fatalf("DS %q: %v", dsr.DS, err)
	}
	ds := rr.(*dns.DS)
	m := new(dns.Msg)
	m.SetQuestion(zone, dns.TypeDNSKEY)
	m.SetEdns0(4096, true)
	resp, _, err := (&dns.Client{Timeout: 2 * time.Second}).ExchangeContext(ctx, m, st.DNS)
	if err != nil {
		t.Fatal(err)
	}
	var served *dns.DNSKEY
	for _, rr := range resp.Answer {
		if k, ok := rr.(*dns.DNSKEY); ok {
			served = k
		}
	}
	if served == nil {
		t.Fatalf("no DNSKEY served: %v", resp)
	}
	if got := served.ToDS(ds.DigestType); got == nil || !strings.EqualFold(got.Digest, ds.Digest) || got.KeyTag != ds.KeyTag || ds.Hdr.Name != zone || dsr.KeyTag != ds.KeyTag {
		t.Fatalf("served DNSKEY gives DS %v, API gave %v", got, ds)
	}

	// Publishing needs dns.primary.
	if _, err := ca.DNSPublish(ctx); !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "dns.primary is not set: pcnode config set dns.primary host:port") {
		t.Errorf("publish without primary: %v", err)
	}

	// B joins with an invite, offline, then finds A through A's zone.
	inv, err := ca.Invite(ctx, api.InviteRequest{TTL: "5m"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(inv.Code, "pcnode1") || inv.Cloud != ci.ID || time.Until(inv.Expires) > 5*time.Minute || len(inv.Addrs) == 0 {
		t.Fatalf("invite %+v", inv)
	}
	homeB := newHomeWith(t, InitOptions{Name: "b", NoCloud: true}, map[string]string{"dns.zone": zone, "dns.servers": st.DNS})
	if _, err := os.Stat(filepath.Join(homeB, CloudDir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("NoCloud home has a cloud directory: %v", err)
	}
	bi, err := Join(ctx, homeB, inv.Code, JoinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if bi.ID != ci.ID || bi.Device != "b" || bi.Admin || bi.Members != 2 || bi.Role != RoleDevice {
		t.Fatalf("joined %+v", bi)
	}
	// A used code is refused, with the inviter's reason.
	homeC := newHomeWith(t, InitOptions{Name: "c", NoCloud: true}, map[string]string{})
	if _, err := Join(ctx, homeC, inv.Code, JoinOptions{}); !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), "already been used") {
		t.Errorf("join with a used code: %v", err)
	}
	// A home with a cloud cannot join another.
	if _, err := Join(ctx, homeB, inv.Code, JoinOptions{}); !errors.Is(err, ErrHasCloud) || !errors.Is(err, api.ErrConflict) {
		t.Errorf("second join: %v", err)
	}

	// The offline join remembered A's addresses (TestJoinRemembersInviter);
	// forget them here, so that this test shows DNS alone finds A.
	if err := os.Remove(filepath.Join(homeB, PeersFile)); err != nil {
		t.Fatalf("the offline join left no remembered inviter: %v", err)
	}
	b := startNode(t, homeB, false)
	cb, err := api.DialHome(homeB)
	if err != nil {
		t.Fatal(err)
	}
	connected := func(c *api.Client, name string) func() (bool, string) {
		return func() (bool, string) {
			ds, err := c.Devices(ctx)
			if err != nil {
				return false, err.Error()
			}
			d, ok := device(ds, name)
			return ok && d.Connected && !d.Revoked, strings.TrimSpace(strings.ReplaceAll(strings.Join(names(ds), " "), "\n", ""))
		}
	}
	waitFor(t, "B to find and connect to A through DNS", 20*time.Second, connected(cb, "a"))
	waitFor(t, "A to list B as connected", 20*time.Second, connected(ca, "b"))
	dsB, err := cb.Devices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if dsB[0].Name != "b" || !dsB[0].Self {
		t.Errorf("B's own entry is not first: %+v", dsB)
	}
	if da, _ := device(dsB, "a"); !slices.Contains(da.Sources, "dns") || da.Path != "direct" || !da.Admin {
		t.Errorf("B's view of A: %+v, want found by dns, direct, admin", da)
	}
	if v := metric(t, ca, "pcnode_cloud_members"); v != 2 {
		t.Errorf("pcnode_cloud_members = %v, want 2", v)
	}
	if v := metric(t, ca, "pcnode_cloud_members_connected"); v != 1 {
		t.Errorf("pcnode_cloud_members_connected = %v, want 1", v)
	}
	waitFor(t, "A's zone to list B", 10*time.Second, func() (bool, string) {
		ps := dnsaddrPeers(t, st.DNS, zone)
		return ps[b.ID().String()] && ps[a.ID().String()], strings.Join(mapKeys(ps), " ")
	})

	// Refusals.
	if _, err := cb.Invite(ctx, api.InviteRequest{}); !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), "not an admin") {
		t.Errorf("invite on a non-admin: %v", err)
	}
	if _, err := ca.Revoke(ctx, "nope"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("revoke unknown: %v", err)
	}
	if _, err := ca.Join(ctx, api.JoinRequest{Code: inv.Code}); !errors.Is(err, api.ErrConflict) {
		t.Errorf("join on a home with a cloud: %v", err)
	}
	if _, err := ca.Rename(ctx, "b", "a"); !errors.Is(err, api.ErrConflict) {
		t.Errorf("rename to a taken name: %v", err)
	}

	// Revoke B: A disconnects it, refuses it, drops it from the zone.
	d, err := ca.Revoke(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if !d.Revoked || d.RevokedAt.IsZero() || d.ID != b.ID().String() {
		t.Fatalf("revoked device %+v", d)
	}
	waitFor(t, "A to drop B", 10*time.Second, func() (bool, string) {
		c := a.Host().Libp2p().Network().Connectedness(b.ID())
		return c != network.Connected, c.String()
	})
	ds2, err := ca.Devices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if db, _ := device(ds2, "b"); !db.Revoked || db.Connected || ds2[len(ds2)-1].Name != "b" {
		t.Errorf("A's devices after revoke: %+v", ds2)
	}
	if ci, _ := ca.Cloud(ctx); ci.Members != 1 || ci.RevokedCount != 1 || ci.Version != 3 {
		t.Errorf("cloud after revoke %+v", ci)
	}
	aAddr, err := multiaddr.NewMultiaddr(st.Addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err = b.Host().Connect(cctx, aAddr)
	cancel()
	if err == nil {
		// The handshake may complete before A's gater closes it.
		waitFor(t, "A to refuse B's reconnection", 5*time.Second, func() (bool, string) {
			c := a.Host().Libp2p().Network().Connectedness(b.ID())
			return c != network.Connected, c.String()
		})
	}
	waitFor(t, "A's zone to drop B", 10*time.Second, func() (bool, string) {
		ps := dnsaddrPeers(t, st.DNS, zone)
		return !ps[b.ID().String()] && ps[a.ID().String()], strings.Join(mapKeys(ps), " ")
	})
	if _, err := ca.Revoke(ctx, "b"); !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "already revoked") {
		t.Errorf("second revoke: %v", err)
	}
}

func names(ds []api.Device) []string {
	var out []string
	for _, d := range ds {
		s := d.Name
		if d.Connected {
			s += "(connected)"
		}
		if d.Revoked {
			s += "(revoked)"
		}
		out = append(out, s)
	}
	return out
}

func mapKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestCloudOffline: the cloud is readable and changeable from disk; what
// needs the network says so.
func TestCloudOffline(t *testing.T) {
	home := newHomeWith(t, InitOptions{Name: "solo"}, map[string]string{"dns.zone": "example.test"})
	n := startNode(t, home, true)
	ctx := t.Context()

	ci, err := n.Cloud(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ci.Online || ci.Device != "solo" || !ci.Admin || ci.Members != 1 {
		t.Fatalf("offline cloud %+v", ci)
	}
	ds, err := n.Devices(ctx)
	if err != nil || len(ds) != 1 || !ds[0].Self || ds[0].Name != "solo" || ds[0].Connected {
		t.Fatalf("offline devices %+v, %v", ds, err)
	}
	if _, err := n.Invite(ctx, api.InviteRequest{}); !errors.Is(err, api.ErrOffline) {
		t.Errorf("offline invite: %v", err)
	}
	if d, err := n.Rename(ctx, "solo", "desk"); err != nil || d.Name != "desk" {
		t.Errorf("offline rename: %+v, %v", d, err)
	}
	if _, err := n.Revoke(ctx, "desk"); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("revoking this device: %v", err)
	}
	if _, err := n.Rename(ctx, "desk", " bad"); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("bad name: %v", err)
	}

	// The DS works offline; the key is made once and kept.
	d1, err := n.DNSDS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d2, err := n.DNSDS(ctx)
	if err != nil || d1 != d2 || d1.Zone != "example.test." {
		t.Fatalf("DS changed or wrong: %+v %+v %v", d1, d2, err)
	}
	if fi, err := os.Stat(filepath.Join(home, DNSKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("dns.key: %v %v", fi, err)
	}
	if _, err := n.DNSPublish(ctx); !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "dns.primary") {
		t.Errorf("publish without primary: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopened, the rename is there.
	n2 := startNode(t, home, true)
	if ci, err := n2.Cloud(ctx); err != nil || ci.Device != "desk" || ci.Version != 2 {
		t.Fatalf("after reopen: %+v, %v", ci, err)
	}
}

func TestInitCloud(t *testing.T) {
	ctx := t.Context()
	// NoCloud: nothing to show until a join.
	home := newHomeWith(t, InitOptions{NoCloud: true}, map[string]string{})
	n := startNode(t, home, true)
	if _, err := n.Cloud(ctx); !errors.Is(err, api.ErrNotFound) || !strings.Contains(err.Error(), "pcnode join") {
		t.Errorf("cloud of a NoCloud home: %v", err)
	}
	if _, err := n.Devices(ctx); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("devices of a NoCloud home: %v", err)
	}
	if _, err := n.DNSDS(ctx); !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "dns.zone is not set") {
		t.Errorf("DS without dns.zone: %v", err)
	}
	if _, err := n.Join(ctx, api.JoinRequest{Code: "pcnode1nonsense"}); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("join with a bad code: %v", err)
	}
	n.Close()

	// Force keeps the old cloud aside and makes a new one.
	home = newHomeWith(t, InitOptions{Name: "x", Role: RoleServer}, map[string]string{})
	n = startNode(t, home, true)
	old, err := n.Cloud(ctx)
	if err != nil || n.Settings().Role != RoleServer || n.Settings().Name != "x" {
		t.Fatalf("cloud %+v, %v; settings %+v", old, err, n.Settings())
	}
	// The first device of a cloud made by a server is listed as one, so
	// siblings pick it as their relay.
	if ds, err := n.Devices(ctx); err != nil || len(ds) != 1 || ds[0].Role != RoleServer {
		t.Errorf("devices of a server's new cloud: %+v, %v (want one of role server)", ds, err)
	}
	n.Close()
	if err := Init(home, InitOptions{Profile: ProfileLocal, APIListen: "127.0.0.1:0", Force: true, Name: "y"}); err != nil {
		t.Fatal(err)
	}
	aside, _ := filepath.Glob(filepath.Join(home, CloudDir+".replaced-*"))
	if len(aside) != 1 {
		t.Fatalf("old cloud not kept aside: %v", aside)
	}
	n = startNode(t, home, true)
	cur, err := n.Cloud(ctx)
	if err != nil || cur.ID == old.ID || cur.Device != "y" {
		t.Fatalf("after --force: %+v, %v (old %s)", cur, err, old.ID)
	}
}

// TestJoinThroughDaemon: a daemon whose home has no cloud joins one
// through the API and serves it at once.
func TestJoinThroughDaemon(t *testing.T) {
	ctx := t.Context()
	a := startNode(t, newHomeWith(t, InitOptions{Name: "a"}, map[string]string{}), false)
	ca, err := api.DialHome(a.Home())
	if err != nil {
		t.Fatal(err)
	}
	homeD := newHomeWith(t, InitOptions{Name: "d", NoCloud: true}, map[string]string{})
	d := startNode(t, homeD, false)
	cd, err := api.DialHome(homeD)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := cd.Status(ctx); st.Cloud != "" {
		t.Fatalf("status of a home without cloud names %q", st.Cloud)
	}
	inv, err := ca.Invite(ctx, api.InviteRequest{Admin: true})
	if err != nil {
		t.Fatal(err)
	}
	ci, err := cd.Join(ctx, api.JoinRequest{Code: inv.Code, Admin: true, Role: RoleServer})
	if err != nil {
		t.Fatal(err)
	}
	if !ci.Admin || ci.Device != "d" || ci.Role != RoleServer || !ci.Online || ci.Members != 2 {
		t.Fatalf("joined %+v", ci)
	}
	if st, _ := cd.Status(ctx); st.Cloud != ci.ID {
		t.Errorf("status cloud %q, want %q", st.Cloud, ci.ID)
	}
	waitFor(t, "D to list A as connected", 10*time.Second, func() (bool, string) {
		ds, err := cd.Devices(ctx)
		if err != nil {
			return false, err.Error()
		}
		da, ok := device(ds, "a")
		return ok && da.Connected, strings.Join(names(ds), " ")
	})
	// D, a server, is the relay A would reserve with; A, a device, is not
	// one for D.
	if rs := a.members.servers(a.Host(), a.ID()); len(rs) != 1 || rs[0].ID != d.ID() || len(rs[0].Addrs) == 0 {
		t.Errorf("A's static relays %v, want D with addresses", rs)
	}
	if rs := d.members.servers(d.Host(), d.ID()); len(rs) != 0 {
		t.Errorf("D's static relays %v, want none", rs)
	}
	// An admin now, D can invite.
	if _, err := cd.Invite(ctx, api.InviteRequest{}); err != nil {
		t.Errorf("invite on the new admin: %v", err)
	}
	// The name and role were saved for the next start.
	s, err := LoadSettings(homeD)
	if err != nil || s.Role != RoleServer || s.Name != "d" {
		t.Errorf("saved settings %+v, %v", s, err)
	}
}

// TestJoinRemembersInviter: a device that joins without a daemon finds
// its inviter at its first daemon start with no DHT, DNS or mDNS: the
// join left the inviter's addresses among the remembered siblings.
func TestJoinRemembersInviter(t *testing.T) {
	ctx := t.Context()
	_, cb := pairOffline(t)
	waitFor(t, "B to reconnect to A from its remembered addresses", 20*time.Second, func() (bool, string) {
		ds, err := cb.Devices(ctx)
		if err != nil {
			return false, err.Error()
		}
		d, ok := device(ds, "a")
		return ok && d.Connected && slices.Contains(d.Sources, "remembered"), fmt.Sprintf("%+v", d)
	})
}

// pairOffline starts daemon "a" (a new cloud), joins a second home "b"
// to it with an invite while b has no daemon, then starts b's daemon; it
// returns both API clients. The daemons stop with the test.
func pairOffline(t *testing.T) (ca, cb *api.Client) {
	t.Helper()
	ctx := t.Context()
	homeA := newHomeWith(t, InitOptions{Name: "a"}, map[string]string{})
	startNode(t, homeA, false)
	ca, err := api.DialHome(homeA)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := ca.Invite(ctx, api.InviteRequest{TTL: "5m"})
	if err != nil {
		t.Fatal(err)
	}
	homeB := newHomeWith(t, InitOptions{Name: "b", NoCloud: true}, map[string]string{})
	if _, err := Join(ctx, homeB, inv.Code, JoinOptions{}); err != nil {
		t.Fatal(err)
	}
	startNode(t, homeB, false)
	if cb, err = api.DialHome(homeB); err != nil {
		t.Fatal(err)
	}
	return ca, cb
}
