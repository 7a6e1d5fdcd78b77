package p2p

import (
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
)

// connGracePeriod is how long a new connection is safe from trimming. It is
// Kubo's (and libp2p's) value: long enough for identify and a first bitswap
// exchange to finish.
const connGracePeriod = 20 * time.Second

// newResourceManager builds the resource manager.
//
// Limits: libp2p's DefaultLimits plus its limits for the bundled services
// (identify, ping, autonat, relay, holepunch), scaled by AutoScale to the
// machine: the whole stack may use 1/8 of physical memory (the base limits
// apply below 128 MiB; the scaling is linear above) and half of the process's
// file descriptor limit. These are the limits every go-libp2p node ships with
// and are what libp2p's maintainers tune against real attacks; they leave a
// phone-class box room for the rest of pcnode while a home server with 8 GiB
// gets ~1 GiB for the network, which is plenty for bitswap at line rate
// (yamux windows are at most 16 MiB per stream). Scaling once at startup
// (not per connection) keeps the limits predictable.
func newResourceManager() (network.ResourceManager, error) {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	mgr, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.AutoScale()))
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	return mgr, nil
}

func newConnManager(low, high int) (*connmgr.BasicConnMgr, error) {
	cm, err := connmgr.NewConnManager(low, high, connmgr.WithGracePeriod(connGracePeriod))
	if err != nil {
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	return cm, nil
}
