package folder

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"sort"
	"strconv"

	"github.com/cockroachdb/pebble/v2"
	"github.com/libp2p/go-libp2p/core/peer"
)

// index is a folder's persistent state: the device's own log (one record
// per path, each with the sequence number of its last change) and the
// latest log received from each other device. It lives in a pebble
// database in the folder's state directory:
//
//	m                      epoch, seq of the own log
//	o/<path>               own record
//	p/<short hex>          peer ID, epoch, seq received from that device
//	r/<short hex>/<path>   that device's entry
//
// It is not safe for concurrent use; Folder guards it with its mutex.
type index struct {
	db      *pebble.DB
	epoch   uint64 // random, made with the database: a subscriber with another epoch starts over
	seq     uint64 // last sequence number used
	own     map[string]*record
	log     []seqRef // own paths in the order of their seq; stale refs are skipped
	stale   int
	remotes map[ShortID]*remote
}

type seqRef struct {
	seq  uint64
	path string
}

type remote struct {
	peer    peer.ID
	epoch   uint64
	seq     uint64
	entries map[string]*Entry
}

type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug("pebble: " + fmt.Sprintf(format, args...))
}
func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Warn("pebble: " + fmt.Sprintf(format, args...))
}
func (l pebbleLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}

// openIndex opens (creating) the index in dir. fresh is true when the
// database did not exist before.
func openIndex(dir string, log *slog.Logger) (*index, bool, error) {
	// The index is held in memory (own, remotes); pebble only makes it
	// durable, so its block cache and memtables stay small. With pebble's
	// defaults (8 MiB cache, 4 MiB memtables, memory outside Go's heap) a
	// home server replicating many folders held ~16 MiB per folder once
	// the memtables had been written through.
	cache := pebble.NewCache(1 << 20)
	defer cache.Unref()
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebbleLogger{log}, Cache: cache, MemTableSize: 2 << 20})
	if err != nil {
		return nil, false, err
	}
	x := &index{db: db, own: map[string]*record{}, remotes: map[ShortID]*remote{}}
	fresh := false
	if v, closer, err := db.Get([]byte("m")); err == nil {
		r := &reader{b: v}
		x.epoch, x.seq = r.uvarint("epoch"), r.uvarint("seq")
		closer.Close()
		if r.err != nil {
			db.Close()
			return nil, false, r.err
		}
	} else if err == pebble.ErrNotFound {
		fresh = true
		var b [8]byte
		_, _ = rand.Read(b[:])
		x.epoch = binary.BigEndian.Uint64(b[:]) >> 1
		if err := db.Set([]byte("m"), x.meta(), pebble.Sync); err != nil {
			db.Close()
			return nil, false, err
		}
	} else {
		db.Close()
		return nil, false, err
	}
	if err := x.load(); err != nil {
		db.Close()
		return nil, false, err
	}
	return x, fresh, nil
}

func (x *index) meta() []byte {
	b := binary.AppendUvarint(nil, x.epoch)
	return binary.AppendUvarint(b, x.seq)
}

func (x *index) load() error {
	it, err := x.db.NewIter(nil)
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		k, v := it.Key(), it.Value()
		switch {
		case len(k) > 2 && k[0] == 'o':
			rec, err := decodeRecord(v)
			if err != nil {
				return fmt.Errorf("own %q: %w", k[2:], err)
			}
			x.own[rec.Path] = &rec
		case len(k) == 18 && k[0] == 'p':
			id, err := strconv.ParseUint(string(k[2:]), 16, 64)
			if err != nil {
				return fmt.Errorf("peer key %q: %w", k, err)
			}
			r := &reader{b: v}
			p := r.bytes("peer", 256)
			rm := &remote{peer: peer.ID(p), epoch: r.uvarint("epoch"), seq: r.uvarint("seq"), entries: map[string]*Entry{}}
			if r.err != nil {
				return r.err
			}
			if old := x.remotes[ShortID(id)]; old != nil {
				rm.entries = old.entries
			}
			x.remotes[ShortID(id)] = rm
		case len(k) > 19 && k[0] == 'r':
			id, err := strconv.ParseUint(string(k[2:18]), 16, 64)
			if err != nil {
				return fmt.Errorf("remote key %q: %w", k, err)
			}
			e, err := decodeEntry(v)
			if err != nil {
				return fmt.Errorf("remote %q: %w", k, err)
			}
			rm := x.remotes[ShortID(id)]
			if rm == nil {
				rm = &remote{entries: map[string]*Entry{}}
				x.remotes[ShortID(id)] = rm
			}
			rm.entries[e.Path] = &e
		}
	}
	x.log = make([]seqRef, 0, len(x.own))
	for p, r := range x.own {
		x.log = append(x.log, seqRef{r.Seq, p})
	}
	sort.Slice(x.log, func(i, j int) bool { return x.log[i].seq < x.log[j].seq })
	return it.Error()
}

func ownKey(p string) []byte { return append([]byte("o/"), p...) }
func peerKey(id ShortID) []byte {
	return fmt.Appendf(nil, "p/%016x", uint64(id))
}
func remoteKey(id ShortID, p string) []byte {
	return append(fmt.Appendf(nil, "r/%016x/", uint64(id)), p...)
}

// commitOwn gives each record the next sequence number and stores them
// durably in one batch. bump says whether recs are changes to announce
// (true) or only local bookkeeping, such as a new inode after a touch
// (false: the seq stays).
func (x *index) commitOwn(recs []*record, bump bool) error {
	if len(recs) == 0 {
		return nil
	}
	b := x.db.NewBatch()
	defer b.Close()
	seq := x.seq
	var buf []byte
	for _, r := range recs {
		if bump {
			seq++
			r.Seq = seq
		}
		buf = appendRecord(buf[:0], r)
		if err := b.Set(ownKey(r.Path), buf, nil); err != nil {
			return err
		}
	}
	old := x.seq
	x.seq = seq
	if err := b.Set([]byte("m"), x.meta(), nil); err != nil {
		x.seq = old
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		x.seq = old
		return err
	}
	for _, r := range recs {
		if prev := x.own[r.Path]; prev != nil && bump {
			x.stale++
		}
		x.own[r.Path] = r
		if bump {
			x.log = append(x.log, seqRef{r.Seq, r.Path})
		}
	}
	if x.stale > len(x.log)/2 && x.stale > 1024 {
		x.compactLog()
	}
	return nil
}

func (x *index) compactLog() {
	out := x.log[:0]
	for _, ref := range x.log {
		if r := x.own[ref.path]; r != nil && r.Seq == ref.seq {
			out = append(out, ref)
		}
	}
	clear(x.log[len(out):])
	x.log, x.stale = out, 0
}

// entriesAfter returns own entries with seq > after, in seq order, up to
// the batch limits.
func (x *index) entriesAfter(after uint64) []Entry {
	i := sort.Search(len(x.log), func(i int) bool { return x.log[i].seq > after })
	var out []Entry
	size := 0
	for ; i < len(x.log) && len(out) < maxBatchEntries && size < batchBytes; i++ {
		ref := x.log[i]
		r := x.own[ref.path]
		if r == nil || r.Seq != ref.seq {
			continue
		}
		out = append(out, r.Entry)
		size += 64 + len(r.Path) + 12*len(r.Version)
	}
	return out
}

// applyRemote stores a batch from device p and returns the paths it changed.
func (x *index) applyRemote(p peer.ID, m *batch) ([]string, error) {
	id := ShortIDOf(p)
	rm := x.remotes[id]
	b := x.db.NewBatch()
	defer b.Close()
	if rm == nil || m.Reset || rm.epoch != m.Epoch {
		if rm != nil {
			upper := fmt.Appendf(nil, "r/%016x0", uint64(id)) // '0' sorts right after '/'
			if err := b.DeleteRange(remoteKey(id, ""), upper, nil); err != nil {
				return nil, err
			}
		}
		rm = &remote{peer: p, epoch: m.Epoch, entries: map[string]*Entry{}}
	}
	var changed []string
	var buf []byte
	seq := rm.seq
	for i := range m.Entries {
		e := &m.Entries[i]
		buf = appendEntry(buf[:0], e)
		if err := b.Set(remoteKey(id, e.Path), buf, nil); err != nil {
			return nil, err
		}
		seq = max(seq, e.Seq)
	}
	pm := binary.AppendUvarint(nil, uint64(len(p)))
	pm = append(pm, p...)
	pm = binary.AppendUvarint(pm, m.Epoch)
	pm = binary.AppendUvarint(pm, seq)
	if err := b.Set(peerKey(id), pm, nil); err != nil {
		return nil, err
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return nil, err
	}
	if prev := x.remotes[id]; prev != nil && prev != rm {
		for path := range prev.entries {
			changed = append(changed, path)
		}
	}
	rm.seq = seq
	x.remotes[id] = rm
	for i := range m.Entries {
		e := m.Entries[i]
		rm.entries[e.Path] = &e
		changed = append(changed, e.Path)
	}
	return changed, nil
}

func (x *index) close() error { return x.db.Close() }
