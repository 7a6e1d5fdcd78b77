// Package netns builds multi-host test networks out of Linux network
// namespaces, for tests that need more than loopback: devices on a LAN that
// find each other by mDNS, devices behind NAT routers, a "public" server,
// cut and lossy links.
//
// A Testbed belongs to one test. Every namespace it makes is named with a
// prefix holding the test process's pid ("pcn<pid>x<n>-<name>"), is removed
// by t.Cleanup (after the processes started in it are killed), and, should
// a test process die before its cleanup ran, is swept by the next Testbed
// whose prefix check finds the owning pid gone.
//
// The building blocks:
//
//	tb := netns.New(t)                                   // skips unless root with ip/nft (see New)
//	home := tb.LAN("home", "192.0.2.0/24")               // a bridge in its own switch namespace
//	wan := tb.LAN("wan", "203.0.113.0/24")
//	natA := tb.NAT("natA", home, wan, netns.EndpointIndependent)
//	laptop := tb.Host("laptop", home)                    // 192.0.2.x, default route via natA
//	server := tb.Host("server", wan)                     // 203.0.113.x
//	out, err := laptop.Exec(ctx, "ping", "-c1", server.Addr.String())
//	tb.Cut(natA.Uplink); tb.Heal(natA.Uplink)            // carrier off / on
//	tb.Impair(link, netns.Impairment{Delay: 200 * time.Millisecond, Loss: 0.1})
//
// Impair delays and drops packets with netem where the kernel has it;
// without netem, loss alone is made with nftables and a delay with a
// user-space delay line: the test process carries the link's frames
// between AF_PACKET sockets opened in the LAN's switch namespace, holding
// each for the delay (LineStats reports what it did).
//
// Addresses come only from the documentation ranges (192.0.2.0/24,
// 198.51.100.0/24, 203.0.113.0/24); LAN refuses anything else, so a test
// can never address a real network. The namespaces have no link to the
// machine's own network at all.
//
// The package leaves to its callers what runs inside the hosts: Command and
// Start run any program there through `ip netns exec`. docs/TESTBED.md
// describes the topologies, how each NAT type is made, and how to run the
// tests.
package netns
