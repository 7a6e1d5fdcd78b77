package p2p

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// TestFindProviders: a host finds, in a private DHT, the host that
// announced a CID, and nobody for a CID never announced; without a DHT it
// says so.
func TestFindProviders(t *testing.T) {
	boot := startHost(t, dhtConfig(t))
	a := startHost(t, dhtConfig(t, boot))
	b := startHost(t, dhtConfig(t, boot))
	waitForIn(t, 30*time.Second, "routing tables", func() bool {
		return a.dht.RoutingTable().Size() > 0 && b.dht.RoutingTable().Size() > 0
	})
	sum := func(s string) cid.Cid {
		h, err := mh.Sum([]byte(s), mh.SHA2_256, -1)
		if err != nil {
			t.Fatal(err)
		}
		return cid.NewCidV1(cid.Raw, h)
	}
	announced, never := sum("announced"), sum("never")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := a.Provide(ctx, announced); err != nil {
		t.Fatal(err)
	}
	got, err := b.FindProviders(ctx, announced, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != a.ID() {
		t.Errorf("providers of an announced CID: %v, want %s", got, a.ID())
	}
	lctx, lcancel := context.WithTimeout(ctx, time.Second)
	defer lcancel()
	if got, err := b.FindProviders(lctx, never, 1); err != nil || len(got) != 0 {
		t.Errorf("providers of a CID never announced: %v, %v", got, err)
	}
	// The announcer does not find itself.
	if got, _ := a.FindProviders(lctx, announced, 1); len(got) != 0 {
		t.Errorf("a found %v, itself excluded", got)
	}

	cfg := localConfig(t)
	cfg.DHT = DHTOff
	off := startHost(t, cfg)
	if _, err := off.FindProviders(ctx, announced, 1); !errors.Is(err, ErrNotStarted) {
		t.Errorf("without a DHT: %v, want ErrNotStarted", err)
	}
}
