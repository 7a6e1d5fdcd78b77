package blobstore

import (
	"testing"

	"github.com/ipfs/go-cid"
)

func FuzzDecodePin(f *testing.F) {
	c := rawBlock("x").Cid()
	f.Add(pinKey(c).String(), encodePin(Pin{Cid: c, Recursive: true}))
	f.Add(pinKey(c).String(), encodePin(Pin{Cid: c}))
	f.Add("/pins/", []byte{1, 0})
	f.Add("/pins/notacid", []byte{1, 1})
	f.Add(pinKey(c).String(), []byte{2, 0})
	f.Add(pinKey(c).String(), []byte{1, 0xff})
	f.Fuzz(func(t *testing.T, key string, val []byte) {
		p, err := decodePin(key, val)
		if err != nil {
			return
		}
		// Whatever decodes must encode back to the same record and key.
		if got := encodePin(p); string(got) != string(val) {
			t.Errorf("re-encoded %x, decoded from %x", got, val)
		}
		if p.Cid == cid.Undef {
			t.Error("decoded an undefined CID")
		}
		if _, err := decodePin(pinKey(p.Cid).String(), val); err != nil {
			t.Errorf("own key rejected: %v", err)
		}
	})
}
