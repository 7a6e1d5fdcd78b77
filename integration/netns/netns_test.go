package netns_test

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pcnode/pcnode/integration/netns"
)

// ping reports whether from reaches to with one ICMP echo within 1 s.
func ping(ctx context.Context, from *netns.Host, to netip.Addr) bool {
	_, err := from.Exec(ctx, "ping", "-c1", "-W1", "-n", to.String())
	return err == nil
}

// reachable pings until an answer comes, for at most 10 s: a link just
// made (or just cleared) may drop the first packets while neighbours are
// resolved (seen: a single ping right after two hosts joined a LAN lost).
func reachable(ctx context.Context, from *netns.Host, to netip.Addr) bool {
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ping(ctx, from, to) {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
	}
}

func TestLANAndNAT(t *testing.T) {
	tb := netns.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	home := tb.LAN("home", "192.0.2.0/24")
	wan := tb.LAN("wan", "203.0.113.0/24")
	laptop := tb.Host("laptop", home) // made before the router: gets its route late
	nat := tb.NAT("natA", home, wan, netns.EndpointIndependent)
	desktop := tb.Host("desktop", home)
	server := tb.Host("server", wan)

	if !home.Prefix.Contains(laptop.Addr) || !wan.Prefix.Contains(server.Addr) || !wan.Prefix.Contains(nat.Addr) {
		t.Fatalf("addresses outside their LANs: laptop %s server %s nat %s", laptop.Addr, server.Addr, nat.Addr)
	}
	if nat.Inside.Addr != netip.MustParseAddr("192.0.2.1") {
		t.Fatalf("NAT inside address %s, want the LAN's first", nat.Inside.Addr)
	}

	cases := []struct {
		name      string
		from      *netns.Host
		to        netip.Addr
		reachable bool
	}{
		{"same LAN", laptop, desktop.Addr, true},
		{"inside to public through NAT", laptop, server.Addr, true},
		{"inside (host made after NAT) to public", desktop, server.Addr, true},
		{"public to inside: no route, no port forward", server, laptop.Addr, false},
		{"public to NAT's public address", server, nat.Addr, true},
	}
	for _, c := range cases {
		if got := ping(ctx, c.from, c.to); got != c.reachable {
			t.Errorf("%s: %s → %s reachable %v, want %v", c.name, c.from.Name, c.to, got, c.reachable)
		}
	}

	// Cut the uplink: the LAN still works, the public side does not;
	// Heal brings it back without any reconfiguration.
	tb.Cut(nat.Uplink)
	if ping(ctx, laptop, server.Addr) {
		t.Error("laptop reaches the server with the uplink cut")
	}
	if !ping(ctx, laptop, desktop.Addr) {
		t.Error("LAN broken by an uplink cut")
	}
	tb.Heal(nat.Uplink)
	healed := time.Now()
	if !eventually(ctx, 10*time.Second, func() bool { return ping(ctx, laptop, server.Addr) }) {
		t.Fatal("laptop does not reach the server within 10 s of heal")
	}
	t.Logf("public side reachable %v after heal", time.Since(healed).Round(time.Millisecond))
}

// eventually polls cond every 100 ms until it holds or d has passed.
func eventually(ctx context.Context, d time.Duration, cond func() bool) bool {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if cond() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}

// TestNATMapping checks the two mappings from the outside: one inside
// socket sends to two echo servers, which report the public address and
// port they saw. Endpoint-independent: the same port (and it is the inside
// one, kept); symmetric: different ports.
func TestNATMapping(t *testing.T) {
	for _, m := range []netns.Mapping{netns.EndpointIndependent, netns.Symmetric} {
		t.Run(m.String(), func(t *testing.T) {
			tb := netns.New(t)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			home := tb.LAN("home", "192.0.2.0/24")
			wan := tb.LAN("wan", "203.0.113.0/24")
			nat := tb.NAT("nat", home, wan, m)
			inside := tb.Host("inside", home)
			s1, s2 := tb.Host("s1", wan), tb.Host("s2", wan)

			var servers []string
			for _, s := range []*netns.Host{s1, s2} {
				addr := netip.AddrPortFrom(s.Addr, 3478).String()
				servers = append(servers, addr)
				cmd := s.Command(ctx, agentPath(t))
				cmd.Env = append(os.Environ(), "PCNODE_NETNS_ROLE=udpecho", "PCNODE_NETNS_LISTEN="+addr)
				out, err := cmd.StdoutPipe()
				if err != nil {
					t.Fatal(err)
				}
				if _, err := s.Start(cmd); err != nil {
					t.Fatal(err)
				}
				if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
					t.Fatalf("echo server on %s: %q, %v", s.Name, line, err)
				}
			}
			cmd := inside.Command(ctx, agentPath(t))
			cmd.Env = append(os.Environ(), "PCNODE_NETNS_ROLE=udpprobe",
				"PCNODE_NETNS_LISTEN="+netip.AddrPortFrom(inside.Addr, 40000).String(),
				"PCNODE_NETNS_SERVERS="+strings.Join(servers, ","))
			raw, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("probe: %v\n%s", err, raw)
			}
			var seen []netip.AddrPort
			for _, l := range strings.Fields(string(raw)) {
				ap, err := netip.ParseAddrPort(l)
				if err != nil {
					t.Fatalf("probe output %q: %v", raw, err)
				}
				if ap.Addr() != nat.Addr {
					t.Errorf("server saw %s, want the NAT's public address %s", ap, nat.Addr)
				}
				seen = append(seen, ap)
			}
			if len(seen) != 2 {
				t.Fatalf("probe saw %v, want two answers", seen)
			}
			t.Logf("%s: inside %s:40000 seen as %s and %s", m, inside.Addr, seen[0], seen[1])
			switch m {
			case netns.EndpointIndependent:
				if seen[0].Port() != seen[1].Port() || seen[0].Port() != 40000 {
					t.Errorf("endpoint-independent NAT mapped ports %d and %d, want 40000 twice", seen[0].Port(), seen[1].Port())
				}
			case netns.Symmetric:
				if seen[0].Port() == seen[1].Port() {
					t.Errorf("symmetric NAT mapped both flows to port %d", seen[0].Port())
				}
			}
		})
	}
}

// rtt pings once from from to to (waiting up to 3 s for the answer) and
// returns the round trip ping measured, or false when no answer came.
func rtt(ctx context.Context, from *netns.Host, to netip.Addr) (time.Duration, bool) {
	out, err := from.Exec(ctx, "ping", "-c1", "-W3", "-n", to.String())
	if err != nil {
		return 0, false
	}
	m := pingTime.FindSubmatch(out)
	if m == nil {
		return 0, false
	}
	ms, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		return 0, false
	}
	return time.Duration(ms * float64(time.Millisecond)), true
}

var pingTime = regexp.MustCompile(`time=([0-9.]+) ms`)

// tcpTransfer sends n bytes over TCP from one host to another (agents
// tcpsend and tcpsink) and fails t unless they arrive intact; it returns
// how long the transfer took.
func tcpTransfer(t *testing.T, ctx context.Context, from, to *netns.Host, n int64) time.Duration {
	t.Helper()
	addr := netip.AddrPortFrom(to.Addr, 5001).String()
	sink := to.Command(ctx, agentPath(t))
	sink.Env = append(os.Environ(), "PCNODE_NETNS_ROLE=tcpsink", "PCNODE_NETNS_LISTEN="+addr)
	// A pipe of our own: StdoutPipe's would be closed when the sink
	// exits, perhaps before its last line is read.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	sink.Stdout = pw
	p, err := to.Start(sink)
	pw.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	r := bufio.NewReader(pr)
	if line, err := r.ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("tcpsink on %s: %q, %v", to.Name, line, err)
	}
	send := from.Command(ctx, agentPath(t))
	send.Env = append(os.Environ(), "PCNODE_NETNS_ROLE=tcpsend", "PCNODE_NETNS_SERVERS="+addr, fmt.Sprintf("PCNODE_NETNS_BYTES=%d", n))
	start := time.Now()
	sent, err := send.Output()
	took := time.Since(start)
	if err != nil {
		t.Fatalf("tcpsend: %v", err)
	}
	got, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("tcpsink: %v", err)
	}
	if want := fmt.Sprintf("%d %s", n, sent); got != want {
		t.Fatalf("tcpsink received %q, want %q", got, want)
	}
	return took
}

// TestImpair: total loss stops traffic on the link, clearing restores it;
// a delay shows in the round trip, and TCP carries data intact through
// it. Where the kernel has netem it makes the delay; where it has not,
// the user-space delay line does. The line is tested on both kinds of
// kernels (Impairment.UserSpace), together with Cut and Heal through it.
func TestImpair(t *testing.T) {
	tb := netns.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	lan := tb.LAN("lan", "198.51.100.0/24")
	a, b := tb.Host("a", lan), tb.Host("b", lan)
	link := b.Links[0]
	if !reachable(ctx, a, b.Addr) {
		t.Fatal("no ping before impairment")
	}
	impair := func(im netns.Impairment) {
		t.Helper()
		if err := tb.Impair(link, im); err != nil {
			t.Fatal(err)
		}
	}
	for _, userSpace := range []bool{false, true} {
		impair(netns.Impairment{Loss: 1, UserSpace: userSpace})
		if ping(ctx, a, b.Addr) {
			t.Errorf("ping passes a link with 100%% loss (user space %v)", userSpace)
		}
		if st, ok := tb.LineStats(link); ok != userSpace {
			t.Errorf("loss only, user space %v: link has a delay line: %v", userSpace, ok)
		} else if ok && (st.ToHost.Lost == 0 || st.ToHost.Delivered != 0 || st.ToLAN.Delivered != 0) {
			// a's echo requests go towards b (ToHost); b may send
			// nothing at all, having heard nothing.
			t.Errorf("delay line with 100%% loss: %+v", st)
		}
		impair(netns.Impairment{})
		if !reachable(ctx, a, b.Addr) {
			t.Fatalf("no ping after clearing the impairment (user space %v)", userSpace)
		}
	}

	for _, userSpace := range []bool{false, true} {
		impair(netns.Impairment{Delay: 100 * time.Millisecond, UserSpace: userSpace})
		st, line := tb.LineStats(link)
		if userSpace && !line {
			t.Fatal("UserSpace impairment without a delay line")
		}
		// Both directions are delayed by 100 ms: at least 200 ms round
		// trip. The first ping may find no neighbour entry yet.
		d, ok := rtt(ctx, a, b.Addr)
		if !ok {
			d, ok = rtt(ctx, a, b.Addr)
		}
		if !ok {
			t.Fatalf("no ping through a delayed link (delay line %v)", line)
		}
		if d < 200*time.Millisecond || d > 2*time.Second {
			t.Errorf("round trip %v through a link delayed 100 ms each way (delay line %v)", d, line)
		}
		took := tcpTransfer(t, ctx, a, b, 1<<20)
		t.Logf("delay line %v: ping %v, 1 MiB over TCP in %v", line, d, took.Round(time.Millisecond))
		if line {
			st, _ = tb.LineStats(link)
			t.Logf("delay line: %+v", st)
			if st.Err != nil || st.ToLAN.Delivered == 0 || st.ToHost.Delivered == 0 {
				t.Errorf("delay line stats after a transfer: %+v", st)
			}
			// A cut link passes nothing through the line; healed, it
			// carries again (the sockets survive the port going down).
			tb.Cut(link)
			if ping(ctx, a, b.Addr) {
				t.Error("ping passes a cut link with a delay line")
			}
			tb.Heal(link)
			if !reachable(ctx, a, b.Addr) {
				t.Fatal("no ping through the delay line after heal")
			}
			if st, _ = tb.LineStats(link); st.Err != nil {
				t.Errorf("delay line stopped: %v", st.Err)
			}
		}
		impair(netns.Impairment{})
		if _, ok := tb.LineStats(link); ok {
			t.Error("delay line still there after clearing")
		}
		if !reachable(ctx, a, b.Addr) {
			t.Fatal("no ping after clearing the delay")
		}
		if d, ok := rtt(ctx, a, b.Addr); !ok || d > 100*time.Millisecond {
			t.Errorf("round trip %v (answered %v) after clearing the delay", d, ok)
		}
	}
}
