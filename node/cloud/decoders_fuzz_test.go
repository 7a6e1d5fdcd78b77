package cloud

import (
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// FuzzParseID: a cloud ID comes from invites, DNS (_pcnode) and the
// command line; what parses prints back to itself.
func FuzzParseID(f *testing.F) {
	for _, s := range []string{"", "not-an-id", "12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf", "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N", "k51qzi5uqu5dlvj2baxnqndepeb86cbk3ng7n3i46uzyxzyqj2xjonzllnv0v8"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID(s)
		if err != nil {
			return
		}
		id2, err := ParseID(id.String())
		if err != nil || id2.String() != id.String() {
			t.Fatalf("round trip of %q: %v, %v", s, id2, err)
		}
	})
}

// FuzzDecodePending: the pending-invites file in the home may be damaged;
// what decodes encodes and decodes to the same list.
func FuzzDecodePending(f *testing.F) {
	good, err := encodePending([]pendingInvite{{Expires: time.Unix(1700000000, 0).UTC(), Admin: true}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	used, err := encodePending([]pendingInvite{{Expires: time.Unix(1700000000, 0).UTC(), Used: true, Peer: peer.ID("\x00\x24\x08\x01\x12\x20" + strings.Repeat("\x01", 32))}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(used)
	f.Add([]byte(`{"invites":[{"hash":"` + strings.Repeat("00", 32) + `","expires":1,"used":true,"peer":"not a peer"}]}`))
	f.Add([]byte(`{"invites":[]}`))
	f.Add([]byte(`{"invites":[{"hash":"zz"}]}`))
	f.Add([]byte(`{"other":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		list, err := decodePending(b)
		if err != nil {
			return
		}
		enc, err := encodePending(list)
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodePending(enc)
		if err != nil || len(again) != len(list) {
			t.Fatalf("re-decode: %d entries, %v; want %d", len(again), err, len(list))
		}
		for i := range list {
			if again[i].Hash != list[i].Hash || !again[i].Expires.Equal(list[i].Expires) || again[i].Admin != list[i].Admin || again[i].Used != list[i].Used || again[i].Peer != list[i].Peer {
				t.Fatalf("entry %d: %+v became %+v", i, list[i], again[i])
			}
		}
	})
}
