package share

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ipfs/go-cid"
)

func TestStatusRoundTrip(t *testing.T) {
	exp := time.Unix(1_900_000_000, 0).UTC()
	var buf bytes.Buffer
	root := cid.MustParse("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")
	if err := WriteStatusRequest(&buf, root); err != nil {
		t.Fatal(err)
	}
	got, err := ReadStatusRequest(&buf)
	if err != nil || !got.Equals(root) {
		t.Fatalf("request: %v %v", got, err)
	}
	for _, s := range []Status{{State: StateActive}, {State: StateExpired, Expired: exp}, {}} {
		buf.Reset()
		if err := WriteStatus(&buf, s); err != nil {
			t.Fatal(err)
		}
		got, err := ReadStatus(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(s, got); diff != "" {
			t.Errorf("status (-want +got):\n%s", diff)
		}
	}
	// A revoked share is written as not served.
	buf.Reset()
	if err := WriteStatus(&buf, Status{State: StateRevoked}); err != nil {
		t.Fatal(err)
	}
	if got, _ := ReadStatus(&buf); got.State != "" {
		t.Errorf("revoked reads as %q", got.State)
	}
}

func TestStatusMalformed(t *testing.T) {
	for name, in := range map[string][]byte{
		"empty request": nil,
		"zero length":   {0},
		"too long":      {200, 1},
		"short CID":     {5, 1, 2},
		"not a CID":     {3, 0xff, 0xff, 0xff},
		"huge varint":   bytes.Repeat([]byte{0xff}, 12),
	} {
		if _, err := ReadStatusRequest(bytes.NewReader(in)); err == nil {
			t.Errorf("request %s: no error", name)
		}
	}
	for name, in := range map[string][]byte{
		"unknown kind": {'Z'},
		"short expiry": {'E', 0, 0},
		"zero expiry":  {'E', 0, 0, 0, 0, 0, 0, 0, 0},
		"far future":   {'E', 0xff, 0, 0, 0, 0, 0, 0, 0},
	} {
		if _, err := ReadStatus(bytes.NewReader(in)); !errors.Is(err, ErrStatus) {
			t.Errorf("status %s: %v, want ErrStatus", name, err)
		}
	}
	if _, err := ReadStatus(bytes.NewReader(nil)); err != io.EOF {
		t.Errorf("empty status: %v, want io.EOF", err)
	}
}

// FuzzStatus: whatever the decoders accept, the encoders write back to
// the same value.
func FuzzStatus(f *testing.F) {
	f.Add([]byte{'A'})
	f.Add([]byte{'X'})
	f.Add([]byte{'E', 0, 0, 0, 0, 0x71, 0x3f, 0xb3, 0x00})
	f.Add(append([]byte{36}, cid.MustParse("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy").Bytes()...))
	f.Fuzz(func(t *testing.T, in []byte) {
		if c, err := ReadStatusRequest(bytes.NewReader(in)); err == nil {
			var buf bytes.Buffer
			if err := WriteStatusRequest(&buf, c); err != nil {
				t.Fatalf("accepted %s but cannot write it: %v", c, err)
			}
			if c2, err := ReadStatusRequest(&buf); err != nil || !c2.Equals(c) {
				t.Fatalf("request round trip: %v %v", c2, err)
			}
		}
		if s, err := ReadStatus(bytes.NewReader(in)); err == nil {
			var buf bytes.Buffer
			if err := WriteStatus(&buf, s); err != nil {
				t.Fatal(err)
			}
			s2, err := ReadStatus(&buf)
			if err != nil || !cmp.Equal(s, s2) {
				t.Fatalf("status round trip: %+v %+v %v", s, s2, err)
			}
		}
	})
}
