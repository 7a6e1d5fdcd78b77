package cloud

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

func testInvite(t testing.TB) Invite {
	t.Helper()
	inv := Invite{
		Cloud: cloudID(t, seededKey(t, 1)),
		Inviter: peer.AddrInfo{ID: seededPeer(t, 2), Addrs: []multiaddr.Multiaddr{
			multiaddr.StringCast("/ip4/192.0.2.7/tcp/4001"),
			multiaddr.StringCast("/ip4/192.0.2.7/udp/4001/quic-v1"),
			multiaddr.StringCast("/ip6/2001:db8::7/tcp/4001"),
		}},
		Expires: t0.Add(DefaultInviteTTL),
		Admin:   true,
	}
	for i := range inv.Token {
		inv.Token[i] = byte(i)
	}
	return inv
}

var inviteCmp = cmp.Options{
	cmp.Comparer(func(a, b ID) bool { return a == b }),
	cmp.Comparer(func(a, b multiaddr.Multiaddr) bool { return a.Equal(b) }),
}

func TestInviteRoundTrip(t *testing.T) {
	inv := testInvite(t)
	code, err := inv.Code()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(code, CodePrefix) || code != strings.ToLower(code) {
		t.Errorf("code %q: want lowercase with prefix %q", code, CodePrefix)
	}
	t.Logf("code (%d chars, 3 addresses): %s", len(code), code)
	for _, variant := range []string{
		code,
		strings.ToUpper(code),
		"  " + code[:20] + "\n" + code[20:40] + "-" + code[40:] + "\n",
	} {
		got, err := DecodeInvite(variant, t0)
		if err != nil {
			t.Fatalf("DecodeInvite(%q): %v", variant, err)
		}
		if diff := cmp.Diff(inv, got, inviteCmp); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	}
	var qr bytes.Buffer
	if err := WriteQR(&qr, code); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(qr.String(), "\n"); lines < 20 {
		t.Errorf("QR has %d lines, want a real QR code", lines)
	}
}

func TestDecodeInviteRefuses(t *testing.T) {
	inv := testInvite(t)
	code, _ := inv.Code()
	flip := func(i int) string { // change one base32 character: a typo
		b := []byte(code)
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
		return string(b)
	}
	reencode := func(f func([]byte) []byte) string {
		b, _ := inv.marshalBinary()
		b = f(b[:len(b)-checksumSize])
		return encodeRawWithChecksum(b)
	}
	tests := []struct {
		name string
		code string
		now  time.Time
		err  error
		msg  string
	}{
		{"empty", "", t0, ErrInvalid, "not a pcnode invite"},
		{"wrong prefix", "ipfs1" + code[len(CodePrefix):], t0, ErrInvalid, "not a pcnode invite"},
		{"other text version", "pcnode2" + code[len(CodePrefix):], t0, ErrInvalid, "not a pcnode invite"},
		{"typo", flip(len(code) / 2), t0, ErrInvalid, "checksum"},
		{"typo in checksum", flip(len(code) - 1), t0, ErrInvalid, ""},
		{"truncated", code[:len(code)-10], t0, ErrInvalid, ""},
		{"truncated to prefix", CodePrefix, t0, ErrInvalid, "too short"},
		{"not base32", code + "!", t0, ErrInvalid, "base32"},
		{"oversize", CodePrefix + strings.Repeat("a", MaxCodeLen), t0, ErrInvalid, "longer than"},
		{"expired", code, inv.Expires.Add(time.Second), ErrInviteExpired, "expired"},
		{"binary version 2", reencode(func(b []byte) []byte { b[0] = 2; return b }), t0, ErrInvalid, "version 2"},
		{"unknown flag", reencode(func(b []byte) []byte { b[1] |= 0x80; return b }), t0, ErrInvalid, "flags"},
		{"trailing bytes", reencode(func(b []byte) []byte { return append(b, 0) }), t0, ErrInvalid, "trailing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeInvite(tt.code, tt.now)
			if !errors.Is(err, tt.err) {
				t.Fatalf("DecodeInvite = %v, want %v", err, tt.err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not say %q", err, tt.msg)
			}
		})
	}
	if _, err := DecodeInvite(code, inv.Expires); err != nil {
		t.Errorf("at the expiry second the invite is still valid, got %v", err)
	}
}

// encodeRawWithChecksum builds a code from a binary body, adding a valid
// checksum, to test what lies behind the checksum.
func encodeRawWithChecksum(body []byte) string {
	b := append([]byte(nil), body...)
	b = append(b, 0, 0, 0, 0)
	sum := crc32Sum(body)
	copy(b[len(body):], sum[:])
	return CodePrefix + strings.ToLower(codeEncoding.EncodeToString(b))
}

func TestInviterAddrs(t *testing.T) {
	a, b := seededPeer(t, 2), seededPeer(t, 3)
	full := func(s string, p peer.ID) multiaddr.Multiaddr { return multiaddr.StringCast(s + "/p2p/" + p.String()) }
	tests := []struct {
		name  string
		addrs []multiaddr.Multiaddr
		want  int
		err   bool
	}{
		{"one", []multiaddr.Multiaddr{full("/ip4/127.0.0.1/tcp/1", a)}, 1, false},
		{"dedup", []multiaddr.Multiaddr{full("/ip4/127.0.0.1/tcp/1", a), full("/ip4/127.0.0.1/tcp/1", a)}, 1, false},
		{"no p2p", []multiaddr.Multiaddr{multiaddr.StringCast("/ip4/127.0.0.1/tcp/1")}, 0, true},
		{"two peers", []multiaddr.Multiaddr{full("/ip4/127.0.0.1/tcp/1", a), full("/ip4/127.0.0.1/tcp/2", b)}, 0, true},
		{"none", nil, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			self, got, err := inviterAddrs(tt.addrs)
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if err == nil && (len(got) != tt.want || self != a) {
				t.Errorf("got %v for %s, want %d addresses of %s", got, self, tt.want, a)
			}
		})
	}
	var many []multiaddr.Multiaddr
	for i := range MaxInviteAddrs + 3 {
		many = append(many, multiaddr.StringCast("/ip4/127.0.0.1/tcp/"+strconv.Itoa(1000+i)+"/p2p/"+a.String()))
	}
	if _, got, err := inviterAddrs(many); err != nil || len(got) != MaxInviteAddrs {
		t.Errorf("many: %d addresses, %v; want %d", len(got), err, MaxInviteAddrs)
	}
}

func FuzzDecodeInvite(f *testing.F) {
	inv := testInvite(f)
	code, _ := inv.Code()
	f.Add(code)
	f.Add(strings.ToUpper(code))
	f.Add(code[:len(code)/2])
	f.Add(CodePrefix)
	f.Add("pcnode1aaaaaaaa")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := DecodeInvite(s, t0)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrInviteExpired) {
				t.Fatalf("error %v wraps neither ErrInvalid nor ErrInviteExpired", err)
			}
			return
		}
		again, err := got.Code()
		if err != nil {
			t.Fatalf("decoded invite does not encode: %v", err)
		}
		back, err := DecodeInvite(again, t0)
		if err != nil {
			t.Fatalf("re-encoded code does not decode: %v", err)
		}
		if diff := cmp.Diff(got, back, inviteCmp); diff != "" {
			t.Fatalf("round trip changed the invite:\n%s", diff)
		}
	})
}

func crc32Sum(b []byte) [4]byte {
	var s [4]byte
	binary.BigEndian.PutUint32(s[:], crc32.Checksum(b, crcTable))
	return s
}
