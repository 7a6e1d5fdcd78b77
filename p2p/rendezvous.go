package p2p

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/multiformats/go-multihash"
)

// Rendezvous timers. A member provides the day's key and looks up its
// providers; members that start later find it at once, so the periodic
// lookup (Config.RendezvousInterval) only matters when two siblings come up
// in different parts of the DHT at about the same time.
const (
	// rendezvousBoundary is how close to 00:00 UTC a member also provides
	// and looks up the adjacent day's key, so that siblings whose clocks
	// disagree by up to this much still meet.
	rendezvousBoundary = time.Hour

	// rendezvousReprovide renews the provider records well within their
	// 48 h validity on Amino DHT servers, and refreshes the addresses they
	// carry (servers keep those for 24 h).
	rendezvousReprovide = 6 * time.Hour

	// rendezvousLookupTimeout bounds one lookup; on a healthy DHT a lookup
	// takes a few seconds.
	rendezvousLookupTimeout = time.Minute

	// rendezvousProvideTimeout bounds one provide.
	rendezvousProvideTimeout = 2 * time.Minute

	// rendezvousAddrSettle is how long after the host's addresses change
	// (a port mapping, an AutoNAT verdict, a new network) it provides
	// again, so that a burst of changes costs one provide.
	rendezvousAddrSettle = 10 * time.Second

	// rendezvousTablePoll is how often the loop checks whether the DHT's
	// routing table has a peer yet; until it has, a lookup cannot start.
	rendezvousTablePoll = 50 * time.Millisecond
)

// rendezvousEarly are the delays of the first lookups after the routing
// table fills, before the loop settles on Config.RendezvousInterval: a
// sibling that started at the same moment may not have provided yet.
var rendezvousEarly = []time.Duration{2 * time.Second, 5 * time.Second, 15 * time.Second, 45 * time.Second}

// rendezvousLabel is the HMAC message prefix; it separates rendezvous keys
// from anything else derived from the cloud secret.
const rendezvousLabel = "pcnode-rendezvous/"

// RendezvousKey returns the DHT key under which the members of the cloud
// whose secret is secret meet on day's UTC date: the CIDv1 (raw codec,
// sha2-256) of HMAC-SHA256(secret, "pcnode-rendezvous/" + "2006-01-02").
// Without the secret, the key cannot be linked to the cloud, and it changes
// every day.
func RendezvousKey(secret []byte, day time.Time) cid.Cid {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(rendezvousLabel + day.UTC().Format(time.DateOnly)))
	mh, err := multihash.Sum(mac.Sum(nil), multihash.SHA2_256, -1)
	if err != nil {
		panic(fmt.Sprintf("p2p: sha2-256 multihash: %v", err)) // cannot happen
	}
	return cid.NewCidV1(cid.Raw, mh)
}

// rendezvousDays returns the UTC days whose keys a member provides and looks
// up at now: today, and within rendezvousBoundary of midnight the adjacent
// day too.
func rendezvousDays(now time.Time) []time.Time {
	now = now.UTC()
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	days := []time.Time{today}
	if now.Sub(today) < rendezvousBoundary {
		days = append(days, today.AddDate(0, 0, -1))
	}
	if tomorrow := today.AddDate(0, 0, 1); tomorrow.Sub(now) <= rendezvousBoundary {
		days = append(days, tomorrow)
	}
	return days
}

// nextDaysChange returns when rendezvousDays next changes after now: 23:00,
// 00:00 or 01:00 UTC.
func nextDaysChange(now time.Time) time.Time {
	now = now.UTC()
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	for _, t := range []time.Time{
		today.Add(rendezvousBoundary),
		today.AddDate(0, 0, 1).Add(-rendezvousBoundary),
		today.AddDate(0, 0, 1),
	} {
		if t.After(now) {
			return t
		}
	}
	return today.AddDate(0, 0, 1).Add(rendezvousBoundary)
}

// rendezvousKeys returns the keys to provide and look up at now, or nil
// without a secret.
func (h *Host) rendezvousKeys(now time.Time) []cid.Cid {
	sp := h.secret.Load()
	if sp == nil {
		return nil
	}
	var keys []cid.Cid
	for _, d := range rendezvousDays(now) {
		keys = append(keys, RendezvousKey(*sp, d))
	}
	return keys
}

// SetRendezvousSecret replaces Config.RendezvousSecret while the host runs,
// for a device that joins a cloud (or whose cloud secret is rotated) after
// Start: the host provides and looks up the new keys at once and stops
// renewing the old ones (their records expire on their own). nil stops the
// rendezvous. It fails with ErrConfig for a secret shorter than 16 bytes.
// The DHT must be on (Config.DHT not DHTOff) for it to have an effect.
func (h *Host) SetRendezvousSecret(secret []byte) error {
	if secret != nil && len(secret) < 16 {
		return fmt.Errorf("p2p: set rendezvous secret: %w: %d bytes, want at least 16", ErrConfig, len(secret))
	}
	if secret == nil {
		h.secret.Store(nil)
	} else {
		c := slices.Clone(secret)
		h.secret.Store(&c)
	}
	select {
	case h.secretChanged <- struct{}{}:
	default:
	}
	return nil
}

// rendezvous runs until ctx ends: it provides the current keys (at the
// start, when the set of days changes and every rendezvousReprovide) and
// looks up their providers (at the start, a few times early, then every
// Config.RendezvousInterval and whenever the days change), handing every
// provider to the candidate pipeline.
func (h *Host) rendezvous(ctx context.Context, d *dht.IpfsDHT) {
	// A lookup with an empty routing table fails at once; wait for the
	// bootstrap dials or any other connection to fill it.
	tick := time.NewTicker(rendezvousTablePoll)
	for d.RoutingTable().Size() == 0 {
		select {
		case <-ctx.Done():
			tick.Stop()
			return
		case <-tick.C:
		}
	}
	tick.Stop()

	var events <-chan any
	if sub, err := d.Host().EventBus().Subscribe(new(event.EvtLocalAddressesUpdated)); err == nil {
		defer sub.Close()
		events = sub.Out()
	}

	var (
		provided       []cid.Cid
		providedAt     time.Time
		providing      atomic.Bool
		lookedUp       []cid.Cid
		nextLookup     = time.Now()
		early          = 0
		addrsChanged   bool
		addrsChangedAt time.Time
	)
	for {
		now := h.s.now()
		keys := h.rendezvousKeys(now)
		if keys == nil {
			// No secret (yet): nothing to provide or look up.
			provided, lookedUp = nil, nil
			select {
			case <-ctx.Done():
				return
			case <-h.secretChanged:
				continue
			}
		}
		settled := addrsChanged && time.Since(addrsChangedAt) >= rendezvousAddrSettle
		if (!slices.Equal(keys, provided) || time.Since(providedAt) >= rendezvousReprovide || settled) && providing.CompareAndSwap(false, true) {
			provided, providedAt, addrsChanged = keys, time.Now(), false
			h.wg.Add(1)
			go func() {
				defer h.wg.Done()
				defer providing.Store(false)
				h.provide(ctx, d, keys)
			}()
		}
		if !time.Now().Before(nextLookup) || !slices.Equal(keys, lookedUp) {
			h.lookup(ctx, d, keys)
			lookedUp = keys
			if early < len(rendezvousEarly) {
				nextLookup = time.Now().Add(rendezvousEarly[early])
				early++
			} else {
				nextLookup = time.Now().Add(h.s.rvInterval)
			}
		}

		wait := min(time.Until(nextLookup), max(nextDaysChange(now).Sub(now), 0))
		if addrsChanged {
			wait = min(wait, max(rendezvousAddrSettle-time.Since(addrsChangedAt), 0))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-h.secretChanged:
			t.Stop()
		case <-events:
			// The records carry the addresses of the moment they were
			// made; once the new ones settle, provide again.
			t.Stop()
			if !addrsChanged {
				addrsChangedAt = time.Now()
			}
			addrsChanged = true
		}
	}
}

func (h *Host) provide(ctx context.Context, d *dht.IpfsDHT, keys []cid.Cid) {
	for _, k := range keys {
		pctx, cancel := context.WithTimeout(ctx, rendezvousProvideTimeout)
		start := time.Now()
		err := d.Provide(pctx, k, true)
		cancel()
		if err != nil && !errors.Is(err, context.Canceled) {
			h.s.log.Warn("p2p rendezvous provide failed", "key", k, "err", err)
			continue
		}
		h.s.log.Debug("p2p rendezvous provided", "key", k, "took", time.Since(start))
	}
}

// lookup finds the providers of keys, all at once, and hands each to the
// pipeline as soon as it arrives. It returns when every lookup has ended.
func (h *Host) lookup(ctx context.Context, d *dht.IpfsDHT, keys []cid.Cid) {
	ctx, cancel := context.WithTimeout(ctx, rendezvousLookupTimeout)
	defer cancel()
	done := make(chan struct{}, len(keys))
	for _, k := range keys {
		go func() {
			defer func() { done <- struct{}{} }()
			// count 0: run the lookup to the end rather than stopping
			// at the first providers; a cloud has few devices.
			for ai := range d.FindProvidersAsync(ctx, k, 0) {
				h.found(SourceDHT, ai)
			}
		}()
	}
	for range keys {
		<-done
	}
}
