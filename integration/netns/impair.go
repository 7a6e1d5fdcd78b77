package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Impairment is what Impair does to a link, in each direction.
type Impairment struct {
	Delay time.Duration // added one-way delay; 0 = none
	Loss  float64       // fraction of packets dropped, 0 to 1
	// UserSpace makes the user-space delay line carry the link even where
	// the kernel has netem, so that the line is tested on such kernels too.
	UserSpace bool
}

// Impair adds delay and loss to both directions of l, and returns when they
// apply. A zero Impairment clears the link. It tries, in order:
//
//   - netem: a `tc netem` qdisc on the host's interface and one on the
//     bridge port, each delaying and dropping what leaves through it;
//   - without netem in the kernel (CONFIG_NET_SCH_NETEM), loss alone is
//     made with nftables: a netdev-ingress rule at each end drops that
//     fraction of what arrives (numgen random);
//   - without netem, a delay (or UserSpace) is made by a user-space delay
//     line: the bridge port leaves the bridge, a new veth pair joins it
//     instead, and the test process carries the frames between the port
//     and the new pair with AF_PACKET sockets, holding each for Delay and
//     dropping the Loss fraction, in order, per direction.
//
// LineStats tells whether a link runs through a user-space line. Cut and
// Heal work on an impaired link as on any other.
func (tb *Testbed) Impair(l *Link, im Impairment) error {
	tb.t.Helper()
	if im.Loss < 0 || im.Loss > 1 || im.Delay < 0 {
		return fmt.Errorf("netns: impair %s: bad impairment %+v", l, im)
	}
	ends := [][2]string{{l.Host.NS, l.Iface}, {l.LAN.Switch, l.Port}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tb.stopLine(ctx, l); err != nil {
		return fmt.Errorf("netns: impair %s: %w", l, err)
	}
	for _, e := range ends {
		_ = run(ctx, "tc", "-n", e[0], "qdisc", "del", "dev", e[1], "root")
		_ = run(ctx, "ip", "netns", "exec", e[0], "nft", "delete", "table", "netdev", "pcnode_loss_"+e[1])
	}
	if im.Delay == 0 && im.Loss == 0 {
		return nil
	}
	if !im.UserSpace {
		netem := true
		for _, e := range ends {
			args := []string{"-n", e[0], "qdisc", "replace", "dev", e[1], "root", "netem"}
			if im.Delay > 0 {
				args = append(args, "delay", fmt.Sprintf("%dus", im.Delay.Microseconds()))
			}
			if im.Loss > 0 {
				args = append(args, "loss", fmt.Sprintf("%.3f%%", im.Loss*100))
			}
			err := run(ctx, "tc", args...)
			if err != nil && strings.Contains(err.Error(), "qdisc kind is unknown") {
				netem = false
				break
			}
			if err != nil {
				return fmt.Errorf("netns: impair %s: %w", l, err)
			}
		}
		if netem {
			tb.t.Logf("netns: impair %s: %v delay, %.1f%% loss each way (netem)", l, im.Delay, im.Loss*100)
			return nil
		}
	}
	if im.Delay > 0 || im.UserSpace {
		if err := tb.startLine(ctx, l, im); err != nil {
			return fmt.Errorf("netns: impair %s: user-space delay line: %w", l, err)
		}
		tb.t.Logf("netns: impair %s: %v delay, %.1f%% loss each way (user-space delay line)", l, im.Delay, im.Loss*100)
		return nil
	}
	// numgen random mod 1000 < N drops N per mille at each end.
	rule := fmt.Sprintf("numgen random mod 1000 < %d drop", int(im.Loss*1000+0.5))
	if im.Loss >= 0.9995 {
		rule = "drop" // nft refuses "< 1000" on a mod-1000 value
	}
	for _, e := range ends {
		script := fmt.Sprintf(`table netdev pcnode_loss_%[1]s {
	chain in {
		type filter hook ingress device "%[1]s" priority filter; policy accept;
		%[2]s
	}
}
`, e[1], rule)
		cmd := exec.CommandContext(ctx, "ip", "netns", "exec", e[0], "nft", "-f", "-")
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("netns: impair %s: nft: %w: %s", l, err, bytes.TrimSpace(out))
		}
	}
	tb.t.Logf("netns: impair %s: %.1f%% loss each way (nftables)", l, im.Loss*100)
	return nil
}

// delayLine is a user-space delay line in the path of one link: in the
// LAN's switch namespace, the link's bridge port (Port) is taken off the
// bridge, a veth pair (lineIface ↔ lineIface+"b") is made whose second end
// joins the bridge in its place, and a pump carries the frames between
// Port and lineIface:
//
//	host Iface ⇄ Port ⇄ [pump: delay, loss] ⇄ lineIface ⇄ lineIface+"b" ⇄ br0
type delayLine struct {
	iface string // the pump's end of the new pair; its peer is iface+"b"
	// hostTxCsum is whether the host's interface checksummed in hardware
	// (offloaded) before the line turned that off.
	hostTxCsum bool
	pump       *pump
}

// startLine puts a delay line into l. On failure it undoes what it did.
func (tb *Testbed) startLine(ctx context.Context, l *Link, im Impairment) (err error) {
	sw := l.LAN.Switch
	dl := &delayLine{iface: "l" + l.Port}
	peer := dl.iface + "b"
	tb.mu.Lock()
	if tb.closed {
		tb.mu.Unlock()
		return errors.New("testbed closed")
	}
	if tb.lines == nil {
		tb.lines = map[*Link]*delayLine{}
	}
	tb.lines[l] = dl
	tb.mu.Unlock()
	defer func() {
		if err != nil {
			_ = tb.stopLine(ctx, l)
		}
	}()
	if err := run(ctx, "ip", "-n", sw, "link", "add", dl.iface, "type", "veth", "peer", "name", peer); err != nil {
		return err
	}
	// The host's interface and the new bridge port hand the line only
	// whole, checksummed frames of at most the MTU (see txChecksum).
	if err := inNS(l.Host.NS, func() (err error) {
		dl.hostTxCsum, err = txChecksum(l.Iface, false)
		return err
	}); err != nil {
		return err
	}
	if err := inNS(sw, func() error {
		noIPv6(dl.iface)
		noIPv6(peer)
		_, err := txChecksum(peer, false)
		return err
	}); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"link", "set", peer, "master", "br0"},
		{"link", "set", peer, "up"},
		{"link", "set", dl.iface, "up"},
		{"link", "set", l.Port, "nomaster"},
	} {
		if err := run(ctx, "ip", append([]string{"-n", sw}, args...)...); err != nil {
			return err
		}
	}
	var hostEnd, lanEnd *os.File
	if err := inNS(sw, func() (err error) {
		noIPv6(l.Port)
		if hostEnd, err = openPacket(l.Port); err != nil {
			return err
		}
		if lanEnd, err = openPacket(dl.iface); err != nil {
			hostEnd.Close()
		}
		return err
	}); err != nil {
		return err
	}
	p := newPump(hostEnd, lanEnd, im.Delay, im.Loss, rand.Uint64(), lineTransient)
	tb.mu.Lock()
	dl.pump = p
	tb.mu.Unlock()
	return nil
}

// stopLine takes l's delay line out, if it has one, and puts the bridge
// port back on the bridge. Deleting either end of the line's veth pair
// deletes both.
func (tb *Testbed) stopLine(ctx context.Context, l *Link) error {
	tb.mu.Lock()
	dl := tb.lines[l]
	delete(tb.lines, l)
	tb.mu.Unlock()
	if dl == nil {
		return nil
	}
	if dl.pump != nil {
		dl.pump.Close()
	}
	sw := l.LAN.Switch
	_ = run(ctx, "ip", "-n", sw, "link", "del", dl.iface)
	var errs []error
	if err := run(ctx, "ip", "-n", sw, "link", "set", l.Port, "master", "br0"); err != nil {
		errs = append(errs, err)
	}
	if dl.hostTxCsum {
		errs = append(errs, inNS(l.Host.NS, func() error {
			_, err := txChecksum(l.Iface, true)
			return err
		}))
	}
	return errors.Join(errs...)
}

// LineStats returns what the user-space delay line of l did so far, and
// false if l has none (it is not impaired, or netem or nftables impair it).
// Safe for concurrent use.
func (tb *Testbed) LineStats(l *Link) (LineStats, bool) {
	tb.mu.Lock()
	dl := tb.lines[l]
	var p *pump
	if dl != nil {
		p = dl.pump
	}
	tb.mu.Unlock()
	if p == nil {
		return LineStats{}, false
	}
	s := p.stats()
	s.Err = p.Err()
	return s, true
}
