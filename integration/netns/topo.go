package netns

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// LAN is one broadcast domain: a bridge ("br0") in a switch namespace of
// its own, to which hosts and routers attach with veth pairs. Multicast
// (mDNS) reaches every port; nothing leaves the LAN except through a
// router attached to it.
type LAN struct {
	Name   string
	Prefix netip.Prefix
	// Switch is the namespace holding the bridge.
	Switch string

	tb      *Testbed
	next    netip.Addr // next address to hand out
	ports   int
	gateway netip.Addr // inside address of the LAN's NAT router; zero if none
	hosts   []*Host    // attached hosts, which get a default route via gateway
}

// Host is one machine: a namespace with one interface per LAN it is on.
type Host struct {
	Name string
	// NS is the namespace's full name, for `ip netns exec` and `ip -n`.
	NS string
	// Addr is the address on the first LAN the host joined.
	Addr netip.Addr
	// Links are the host's attachments, in the order made.
	Links []*Link

	tb *Testbed
}

// Link is one veth pair between a host's interface and a port of a LAN's
// bridge.
type Link struct {
	Host *Host
	LAN  *LAN
	// Iface is the interface's name inside the host ("eth0", "in0", "out0").
	Iface string
	// Port is the bridge port's name inside the LAN's switch namespace.
	Port string
	Addr netip.Addr
}

func (l *Link) String() string {
	return fmt.Sprintf("%s/%s—%s", l.Host.Name, l.Iface, l.LAN.Name)
}

// Mapping is how a NAT router picks the public port of an outgoing flow.
type Mapping int

const (
	// EndpointIndependent keeps one public port per inside address and
	// port, whatever the destination (RFC 4787 "endpoint-independent
	// mapping"): nft `masquerade`, which keeps the source port when it is
	// free. Inbound filtering is still address-and-port dependent (only
	// replies to flows in conntrack pass): a port-restricted cone, the
	// common home router, through which hole punching works.
	EndpointIndependent Mapping = iota
	// Symmetric gives every new flow (new destination address or port) a
	// fresh random public port: nft `masquerade fully-random`. A peer
	// cannot predict the port, so hole punching between two such NATs
	// fails and a relay is needed.
	Symmetric
)

func (m Mapping) String() string {
	switch m {
	case EndpointIndependent:
		return "endpoint-independent"
	case Symmetric:
		return "symmetric"
	}
	return fmt.Sprintf("Mapping(%d)", int(m))
}

// NAT is a router that joins an inside LAN to an outside one and masquerades
// the inside's traffic behind its outside address.
type NAT struct {
	*Host
	Mapping Mapping
	// Inside is the link to the inside LAN; its address is the LAN's
	// gateway (the first address of the prefix).
	Inside *Link
	// Uplink is the link to the outside LAN; its address is the public
	// address the inside hosts appear from. Cut(Uplink) is "the home's
	// Internet is down".
	Uplink *Link
}

// LAN makes a LAN for prefix, which must lie inside one of the
// documentation ranges. Addresses are handed out in order from the
// prefix's second address; the first is kept for a NAT's inside interface.
func (tb *Testbed) LAN(name, prefix string) *LAN {
	tb.t.Helper()
	p, err := checkPrefix(prefix)
	if err != nil {
		tb.t.Fatalf("netns: LAN %s: %v", name, err)
	}
	ns := tb.newNS("sw-" + name)
	tb.must("ip", "-n", ns, "link", "add", "br0", "type", "bridge")
	tb.must("ip", "-n", ns, "link", "set", "br0", "up")
	return &LAN{Name: name, Prefix: p, Switch: ns, tb: tb, next: p.Addr().Next().Next()}
}

// alloc returns the LAN's next free address.
func (l *LAN) alloc() (netip.Addr, error) {
	a := l.next
	if !l.Prefix.Contains(a) || !l.Prefix.Contains(a.Next()) { // keep broadcast free
		return netip.Addr{}, fmt.Errorf("LAN %s (%s) is full", l.Name, l.Prefix)
	}
	l.next = a.Next()
	return a, nil
}

// Host makes a host with one interface, eth0, on lan. If lan has a NAT
// router, the host's default route goes through it.
func (tb *Testbed) Host(name string, lan *LAN) *Host {
	tb.t.Helper()
	h := &Host{Name: name, NS: tb.newNS(name), tb: tb}
	a, err := lan.alloc()
	if err != nil {
		tb.t.Fatalf("netns: host %s: %v", name, err)
	}
	tb.attach(h, lan, "eth0", a)
	lan.hosts = append(lan.hosts, h)
	if lan.gateway.IsValid() {
		tb.must("ip", "-n", h.NS, "route", "add", "default", "via", lan.gateway.String())
	}
	return h
}

// attach joins h to lan through a new veth pair named iface in h.
func (tb *Testbed) attach(h *Host, lan *LAN, iface string, a netip.Addr) *Link {
	tb.t.Helper()
	lan.ports++
	port := fmt.Sprintf("p%d", lan.ports)
	tb.must("ip", "link", "add", iface, "netns", h.NS, "type", "veth", "peer", "name", port, "netns", lan.Switch)
	tb.must("ip", "-n", lan.Switch, "link", "set", port, "master", "br0")
	tb.must("ip", "-n", lan.Switch, "link", "set", port, "up")
	pfx := netip.PrefixFrom(a, lan.Prefix.Bits())
	tb.must("ip", "-n", h.NS, "addr", "add", pfx.String(), "dev", iface)
	tb.must("ip", "-n", h.NS, "link", "set", iface, "up")
	l := &Link{Host: h, LAN: lan, Iface: iface, Port: port, Addr: a}
	if !h.Addr.IsValid() {
		h.Addr = a
	}
	h.Links = append(h.Links, l)
	return l
}

// NAT makes a router between inside and outside that masquerades the
// inside's traffic with mapping m. It takes the inside LAN's first address
// (so inside must not have a router yet) and the outside LAN's next free
// one, and becomes the default route of every host on inside, those made
// before it included. Its own default route goes through outside's router,
// if outside has one (nested NAT).
//
// Unsolicited inbound traffic is dropped: only replies to flows that an
// inside host opened are forwarded in, and nothing new reaches the router
// itself from outside over TCP or UDP (as a home router's firewall does;
// it still answers ping). The input rule
// matters for hole punching: a peer's punch packet that arrives before the
// inside host's own would otherwise be delivered to the router, and the
// conntrack entry that delivery confirms takes the public port, so the
// inside host's flow gets a random one.
func (tb *Testbed) NAT(name string, inside, outside *LAN, m Mapping) *NAT {
	tb.t.Helper()
	if inside.gateway.IsValid() {
		tb.t.Fatalf("netns: NAT %s: LAN %s has a router already", name, inside.Name)
	}
	var masq string
	switch m {
	case EndpointIndependent:
		masq = "masquerade"
	case Symmetric:
		masq = "masquerade fully-random"
	default:
		tb.t.Fatalf("netns: NAT %s: unknown mapping %v", name, m)
	}
	r := &NAT{Host: &Host{Name: name, NS: tb.newNS(name), tb: tb}, Mapping: m}
	gw := inside.Prefix.Addr().Next()
	r.Inside = tb.attach(r.Host, inside, "in0", gw)
	pub, err := outside.alloc()
	if err != nil {
		tb.t.Fatalf("netns: NAT %s: %v", name, err)
	}
	r.Uplink = tb.attach(r.Host, outside, "out0", pub)
	r.Host.Addr = pub
	outside.hosts = append(outside.hosts, r.Host)
	if outside.gateway.IsValid() {
		tb.must("ip", "-n", r.NS, "route", "add", "default", "via", outside.gateway.String())
	}
	tb.mustIn(r.NS, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
	tb.mustNft(r.NS, fmt.Sprintf(`table ip pcnode_nat {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "out0" %s
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		iifname "in0" oifname "out0" accept
	}
	chain input {
		type filter hook input priority filter; policy accept;
		iifname "out0" ct state new meta l4proto { tcp, udp } drop
	}
}
`, masq))
	inside.gateway = gw
	for _, h := range inside.hosts {
		tb.must("ip", "-n", h.NS, "route", "replace", "default", "via", gw.String())
	}
	return r
}

// Cut takes the bridge's end of l down: the host sees its carrier go and
// nothing passes either way, while its addresses and routes stay, as when
// a cable is pulled or an uplink fails.
func (tb *Testbed) Cut(l *Link) {
	tb.t.Helper()
	tb.must("ip", "-n", l.LAN.Switch, "link", "set", l.Port, "down")
}

// Heal undoes Cut.
func (tb *Testbed) Heal(l *Link) {
	tb.t.Helper()
	tb.must("ip", "-n", l.LAN.Switch, "link", "set", l.Port, "up")
}

// Command returns a command that runs name with args inside h (through
// `ip netns exec`, which execs the program itself, so the process is
// name's). ctx kills it; the caller sets Stdin, Stdout, Env and so on and
// runs it itself or with Start.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Exec runs name with args inside h and returns its combined output.
func (h *Host) Exec(ctx context.Context, name string, args ...string) ([]byte, error) {
	out, err := h.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("netns: %s: %s %s: %w: %s", h.Name, name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

// Start starts cmd (made with Command) and has the testbed stop it, if
// it still runs, before its namespaces go. The returned Proc waits for it;
// do not call cmd.Wait.
func (h *Host) Start(cmd *exec.Cmd) (*Proc, error) {
	tb := h.tb
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if tb.closed {
		return nil, fmt.Errorf("netns: start in %s: testbed closed", h.Name)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("netns: start in %s: %w", h.Name, err)
	}
	p := &Proc{Cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	tb.procs = append(tb.procs, p)
	return p, nil
}

// Proc is a process started with Host.Start.
type Proc struct {
	Cmd  *exec.Cmd
	done chan struct{}
	err  error
	stop sync.Once
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Wait waits for the process to exit and returns cmd.Wait's error.
func (p *Proc) Wait() error {
	<-p.done
	return p.err
}

// Stop sends SIGTERM, gives the process 5 s to exit, then kills it, and
// waits. It is idempotent and safe for concurrent use.
func (p *Proc) Stop() {
	p.stop.Do(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = p.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = p.Cmd.Process.Kill()
			<-p.done
		}
	})
}
