package dnslink_test

import (
	"context"
	"fmt"
	"log"
	"net/netip"

	"github.com/multiformats/go-multiaddr"
	"github.com/pcnode/pcnode/dnslink"
)

// A home server serves the person's zone signed with DNSSEC; a device
// resolves the cloud's records and validates them from the zone's DS
// record, the one `pcnode dns ds` prints for the registrar.
func Example() {
	ctx := context.Background()
	key, err := dnslink.GenerateKey() // generate once, keep key.Marshal() in the node's home
	if err != nil {
		log.Fatal(err)
	}
	zone, err := dnslink.NewZone(dnslink.ZoneConfig{Zone: "example.org", Key: key})
	if err != nil {
		log.Fatal(err)
	}
	link, _ := dnslink.ParseDNSLink("dnslink=/ipfs/bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi")
	addr, _ := multiaddr.NewMultiaddr("/ip4/127.0.0.1/tcp/4001/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN")
	err = zone.SetRecords(dnslink.Records{
		PCNode:   &dnslink.PCNode{Cloud: "k51cloudid"},
		DNSAddrs: []multiaddr.Multiaddr{addr},
		Links:    map[string]dnslink.Link{"photos": link},
		Hosts:    map[string][]netip.Addr{"homeserver": {netip.MustParseAddr("127.0.0.1")}},
	})
	if err != nil {
		log.Fatal(err)
	}
	srv := dnslink.NewServer(dnslink.ServerConfig{Listen: "127.0.0.1:0"}, zone)
	if err := srv.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	r, err := dnslink.NewResolver(dnslink.ResolverConfig{
		Servers:     []string{srv.Addr()},
		TrustAnchor: zone.DS().String(),
	})
	if err != nil {
		log.Fatal(err)
	}
	res, err := r.ResolveDNSLink(ctx, "photos.example.org")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Link, res.Validated)
	pc, err := r.ResolvePCNode(ctx, "example.org")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(pc.Record.Cloud, pc.Validated)
	// Output:
	// /ipfs/bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi true
	// k51cloudid true
}
