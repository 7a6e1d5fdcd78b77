package netns_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	"github.com/pcnode/pcnode/p2p"
)

// The test binary doubles as the program that runs inside the namespaces:
// a process cannot move its Go threads into another network namespace
// safely, so each host gets a process of its own. With PCNODE_NETNS_ROLE
// set, TestMain plays that role instead of running the tests.
//
// Roles:
//
//	node     a p2p.Host (see runNode), printing its state as JSON lines
//	udpecho  answers each UDP datagram with the sender's address as seen
//	udpprobe sends from one port to each server and prints what they saw
//	metrics  prints the /metrics of the daemon of PCNODE_NETNS_HOME
//	tcpsink  accepts one TCP connection, prints the bytes it carried and their SHA-256
//	tcpsend  sends PCNODE_NETNS_BYTES pseudo-random bytes to a tcpsink
const roleEnv = "PCNODE_NETNS_ROLE"

// agentLifetime bounds every agent: a test that forgets one does not
// leave it running (the testbed kills it at cleanup anyway).
const agentLifetime = 100 * time.Second

func TestMain(m *testing.M) {
	role := os.Getenv(roleEnv)
	if role == "" {
		code := m.Run()
		removeBinary()
		os.Exit(code)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	dump := make(chan os.Signal, 1)
	signal.Notify(dump, syscall.SIGUSR1) // a failed test asks for the goroutines
	go func() {
		for range dump {
			_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
		}
	}()
	ctx, cancel2 := context.WithTimeout(ctx, agentLifetime)
	var err error
	switch role {
	case "node":
		err = runNode(ctx)
	case "udpecho":
		err = runUDPEcho(ctx)
	case "udpprobe":
		err = runUDPProbe(ctx)
	case "metrics":
		err = runMetrics(ctx)
	case "tcpsink":
		err = runTCPSink(ctx)
	case "tcpsend":
		err = runTCPSend(ctx)
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	cancel2()
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "agent %s: %v\n", role, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func splitEnv(k string) []string {
	v := os.Getenv(k)
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// runUDPEcho: PCNODE_NETNS_LISTEN is host:port.
func runUDPEcho(ctx context.Context) error {
	c, err := net.ListenPacket("udp4", os.Getenv("PCNODE_NETNS_LISTEN"))
	if err != nil {
		return err
	}
	go func() { <-ctx.Done(); c.Close() }()
	fmt.Println("ready")
	buf := make([]byte, 1500)
	for {
		_, from, err := c.ReadFrom(buf)
		if err != nil {
			return nil
		}
		if _, err := c.WriteTo([]byte(from.String()), from); err != nil {
			return err
		}
	}
}

// runUDPProbe: PCNODE_NETNS_LISTEN is the local host:port, PCNODE_NETNS_SERVERS
// the echo servers. Prints one line per server: the address it saw.
func runUDPProbe(ctx context.Context) error {
	c, err := net.ListenPacket("udp4", os.Getenv("PCNODE_NETNS_LISTEN"))
	if err != nil {
		return err
	}
	defer c.Close()
	buf := make([]byte, 1500)
	for _, s := range splitEnv("PCNODE_NETNS_SERVERS") {
		to, err := net.ResolveUDPAddr("udp4", s)
		if err != nil {
			return err
		}
		var seen string
		for try := 0; try < 10 && seen == "" && ctx.Err() == nil; try++ {
			if _, err := c.WriteTo([]byte("probe"), to); err != nil {
				return err
			}
			_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			n, _, err := c.ReadFrom(buf)
			if err == nil {
				seen = string(buf[:n])
			}
		}
		if seen == "" {
			return fmt.Errorf("no answer from %s", s)
		}
		fmt.Println(seen)
	}
	return nil
}

// runTCPSink: PCNODE_NETNS_LISTEN is host:port. It prints "ready", then,
// for the one connection it accepts, "<bytes> <sha256 hex>" once the
// sender has closed it.
func runTCPSink(ctx context.Context) error {
	l, err := net.Listen("tcp4", os.Getenv("PCNODE_NETNS_LISTEN"))
	if err != nil {
		return err
	}
	defer l.Close()
	go func() { <-ctx.Done(); l.Close() }()
	fmt.Println("ready")
	c, err := l.Accept()
	if err != nil {
		return err
	}
	defer c.Close()
	go func() { <-ctx.Done(); c.Close() }()
	h := sha256.New()
	n, err := io.Copy(h, c)
	if err != nil {
		return err
	}
	fmt.Printf("%d %x\n", n, h.Sum(nil))
	return nil
}

// runTCPSend: PCNODE_NETNS_SERVERS is the sink's host:port,
// PCNODE_NETNS_BYTES the count. It prints the SHA-256 of what it sent.
func runTCPSend(ctx context.Context) error {
	n, err := strconv.ParseInt(os.Getenv("PCNODE_NETNS_BYTES"), 10, 64)
	if err != nil {
		return err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp4", os.Getenv("PCNODE_NETNS_SERVERS"))
	if err != nil {
		return err
	}
	defer c.Close()
	go func() { <-ctx.Done(); c.Close() }()
	h := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{byte(n)}), n), h)
	if _, err := io.Copy(c, src); err != nil {
		return err
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return err
	}
	// Wait for the sink to close: then everything has arrived.
	_, _ = io.Copy(io.Discard, c)
	fmt.Printf("%x\n", h.Sum(nil))
	return nil
}

// nodeState is one line of a node agent's output.
type nodeState struct {
	ID       peer.ID       `json:"id"`
	Addrs    []string      `json:"addrs"`
	Siblings []siblingJSON `json:"siblings"`
	// Elapsed is the time since the host's Start returned.
	Elapsed time.Duration `json:"elapsed"`
	Err     string        `json:"err,omitempty"`
}

type siblingJSON struct {
	ID           peer.ID  `json:"id"`
	Sources      []string `json:"sources"`
	Connected    bool     `json:"connected"`
	Path         string   `json:"path"`
	Relay        peer.ID  `json:"relay,omitempty"`
	WhyNotDirect string   `json:"why,omitempty"`
}

// runNode runs a p2p.Host configured from the environment:
//
//	PCNODE_NETNS_KEY      hex of the marshalled Ed25519 private key
//	PCNODE_NETNS_LISTEN   listen multiaddrs (comma-separated)
//	PCNODE_NETNS_MEMBERS  peer IDs of the siblings
//	PCNODE_NETNS_MDNS     1 = mDNS on
//	PCNODE_NETNS_RELAY_SERVICE 1 = run the members' relay
//	PCNODE_NETNS_RELAYS   full multiaddrs of static relays
//	PCNODE_NETNS_CONNECT  full multiaddrs to Host.Connect after start
//
// Profile default (so that mDNS, relay client and hole punching are those
// users get), no bootstrap peers, DHT off. It prints a nodeState line
// whenever the state changes and stops at SIGTERM or when stdin closes.
func runNode(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { // the parent closing our stdin means stop
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	raw, err := hex.DecodeString(os.Getenv("PCNODE_NETNS_KEY"))
	if err != nil {
		return err
	}
	key, err := crypto.UnmarshalPrivateKey(raw)
	if err != nil {
		return err
	}
	var listen []multiaddr.Multiaddr
	for _, s := range splitEnv("PCNODE_NETNS_LISTEN") {
		a, err := multiaddr.NewMultiaddr(s)
		if err != nil {
			return err
		}
		listen = append(listen, a)
	}
	members := memberSet{}
	for _, s := range splitEnv("PCNODE_NETNS_MEMBERS") {
		id, err := peer.Decode(s)
		if err != nil {
			return err
		}
		members[id] = true
	}
	var relays []peer.AddrInfo
	for _, s := range splitEnv("PCNODE_NETNS_RELAYS") {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			return err
		}
		relays = append(relays, *ai)
	}
	cfg := p2p.Config{
		Key:          key,
		Profile:      p2p.ProfileDefault,
		ListenAddrs:  listen,
		Bootstrap:    []peer.AddrInfo{}, // none: never the public peers
		Blockstore:   blockstore.NewBlockstore(dssync.MutexWrap(datastore.NewMapDatastore())),
		DHT:          p2p.DHTOff,
		Members:      members,
		MDNS:         p2p.ToggleOff,
		RelayService: os.Getenv("PCNODE_NETNS_RELAY_SERVICE") == "1",
	}
	if os.Getenv("PCNODE_NETNS_MDNS") == "1" {
		cfg.MDNS = p2p.ToggleOn
	}
	if relays != nil {
		cfg.StaticRelays = func() []peer.AddrInfo { return relays }
	}
	h, err := p2p.New(cfg)
	if err != nil {
		return err
	}
	if err := h.Start(ctx); err != nil {
		return err
	}
	defer h.Close()
	started := time.Now()

	var mu sync.Mutex
	var connectErr string
	for _, s := range splitEnv("PCNODE_NETNS_CONNECT") {
		a, err := multiaddr.NewMultiaddr(s)
		if err != nil {
			return err
		}
		go func() {
			for ctx.Err() == nil {
				cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := h.Connect(cctx, a)
				ccancel()
				mu.Lock()
				connectErr = ""
				if err != nil {
					connectErr = err.Error()
				}
				mu.Unlock()
				if err == nil {
					return
				}
				select {
				case <-ctx.Done():
				case <-time.After(500 * time.Millisecond):
				}
			}
		}()
	}

	out := bufio.NewWriter(os.Stdout)
	var last []byte
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		st := nodeState{ID: h.ID()}
		for _, a := range h.Addrs() {
			st.Addrs = append(st.Addrs, a.String())
		}
		for _, s := range h.Siblings() {
			st.Siblings = append(st.Siblings, siblingJSON{
				ID: s.ID, Sources: s.Sources, Connected: s.Connected,
				Path: s.Path, Relay: s.Relay, WhyNotDirect: s.WhyNotDirect,
			})
		}
		mu.Lock()
		st.Err = connectErr
		mu.Unlock()
		line, _ := json.Marshal(st) // Elapsed left out of the comparison
		if !slices.Equal(line, last) {
			last = line
			st.Elapsed = time.Since(started)
			full, _ := json.Marshal(st)
			out.Write(append(full, '\n'))
			out.Flush()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

type memberSet map[peer.ID]bool

func (m memberSet) IsMember(p peer.ID) bool { return m[p] }

// Compile-time check that the agent's members satisfy p2p.Members.
var _ p2p.Members = memberSet{}

// agentPath is the test binary, which the agents run as.
func agentPath(t *testing.T) string {
	t.Helper()
	p, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return p
}
