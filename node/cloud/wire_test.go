package cloud

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"testing"
)

func TestReadMsg(t *testing.T) {
	var good bytes.Buffer
	if err := writeMsg(&good, joinRequest{V: 1, Token: make([]byte, TokenSize), Name: "phone", Role: RoleDevice}); err != nil {
		t.Fatal(err)
	}
	huge := binary.AppendUvarint(nil, MaxRequestSize+1)
	tests := []struct {
		name string
		in   []byte
		err  error
	}{
		{"ok", good.Bytes(), nil},
		{"empty stream", nil, io.ErrUnexpectedEOF},
		{"zero length", []byte{0}, ErrInvalid},
		{"oversize length, no body", huge, ErrInvalid},
		{"bad varint", bytes.Repeat([]byte{0xff}, 11), ErrInvalid},
		{"cut body", good.Bytes()[:good.Len()-3], io.ErrUnexpectedEOF},
		{"unknown field", append([]byte{byte(len(`{"x":1}`))}, `{"x":1}`...), ErrInvalid},
		{"two values", append([]byte{byte(len(`{}{}`))}, `{}{}`...), ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var req joinRequest
			err := readMsg(bufio.NewReader(bytes.NewReader(tt.in)), MaxRequestSize, &req)
			if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Fatalf("readMsg = %v, want %v", err, tt.err)
			}
			if err == nil && req.Name != "phone" {
				t.Errorf("decoded %+v", req)
			}
		})
	}
}

func TestReasons(t *testing.T) {
	for _, r := range reasons {
		if got := errOfReason(reasonOf(r.err)); got != r.err {
			t.Errorf("reason %q maps back to %v, want %v", r.code, got, r.err)
		}
	}
	if reasonOf(io.EOF) != "internal" || errOfReason("internal") != ErrRefused || errOfReason("new-reason") != ErrRefused {
		t.Error("unknown errors and reasons must map to internal / ErrRefused")
	}
}

// FuzzReadMessage feeds arbitrary bytes to the decoder of each wire
// message, as a peer on the join or roster protocol could.
func FuzzReadMessage(f *testing.F) {
	fx := newFixture(f)
	rb, _ := fx.v2.Encode()
	for _, v := range []any{
		joinRequest{V: 1, Token: make([]byte, TokenSize), Name: "phone", Role: RoleDevice, Admin: true},
		joinResponse{OK: true, Roster: rb, Secret: make([]byte, SecretSize)},
		joinResponse{Reason: "used-invite", Message: "invite has already been used"},
		rosterMsg{Version: 2, Roster: rb},
		rosterMsg{Version: 7},
	} {
		var buf bytes.Buffer
		writeMsg(&buf, v)
		f.Add(buf.Bytes())
	}
	f.Add([]byte{0x80, 0x80, 0x80, 0x80, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, v := range []any{&joinRequest{}, &joinResponse{}, &rosterMsg{}} {
			err := readMsg(bufio.NewReader(bytes.NewReader(b)), MaxResponseSize, v)
			if err != nil {
				continue
			}
			// What decodes re-encodes and decodes to the same value.
			var buf bytes.Buffer
			if err := writeMsg(&buf, v); err != nil {
				t.Fatal(err)
			}
			again := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			if err := readMsg(bufio.NewReader(&buf), MaxResponseSize, again); err != nil {
				t.Fatalf("re-encoded %T does not decode: %v", v, err)
			}
			if m, ok := v.(*rosterMsg); ok && len(m.Roster) > 0 {
				DecodeRoster(m.Roster) // must not panic
			}
			if m, ok := v.(*joinResponse); ok && m.OK {
				checkJoinReply(Invite{Cloud: fx.id}, fx.b, JoinOptions{Name: "server", Role: RoleServer}, *m)
			}
		}
	})
}
