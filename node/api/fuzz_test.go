package api

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

func FuzzDecodeAddRequest(f *testing.F) {
	for _, s := range []string{`{"path":"/x"}`, `{"path":"/x","no_pin":true}`, `{}`, ``, `{"path":1}`,
		`{"path":"/x"} trailing`, `[]`, `null`, `{"path":"\u0000"}`, strings.Repeat("{", 100)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var req AddRequest
		err := decodeAddRequest(strings.NewReader(string(b)), &req)
		if err == nil && req.Path == "" {
			t.Fatalf("accepted %q without a path", b)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("error %v for %q is not ErrInvalid", err, b)
		}
		if err != nil && StatusCode(err) != http.StatusBadRequest {
			t.Fatalf("status %d for %q", StatusCode(err), b)
		}
	})
}

func FuzzDecodeGetRequest(f *testing.F) {
	for _, s := range []string{`{"cid":"bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e","output":"/o"}`, `{"cid":"x","output":"/o"}`, `{"output":"/o"}`, `{"cid":""}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var req GetRequest
		err := decodeGetRequest(strings.NewReader(string(b)), &req)
		if err == nil {
			if _, perr := ParseCID(req.CID); perr != nil || req.Output == "" {
				t.Fatalf("accepted %q: %+v", b, req)
			}
		} else if !errors.Is(err, ErrInvalid) {
			t.Fatalf("error %v for %q is not ErrInvalid", err, b)
		}
	})
}

func FuzzDecodePinAndConnect(f *testing.F) {
	for _, s := range []string{`{"cid":"x"}`, `{"cid":"x","recursive":false}`, `{"addr":"/ip4/127.0.0.1/tcp/1"}`, `{"recursive":"yes"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p PinRequest
		if err := decodePinRequest(strings.NewReader(string(b)), &p); err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("pin: %v", err)
		}
		var c ConnectRequest
		err := decodeConnectRequest(strings.NewReader(string(b)), &c)
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("connect: %v", err)
		}
		if err == nil && c.Addr == "" {
			t.Fatalf("accepted %q without addr", b)
		}
	})
}

func FuzzParseCID(f *testing.F) {
	for _, s := range []string{"bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e",
		"QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG", "", "x", "Qm", "b", "f0155"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCID(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			if s != "" && !strings.Contains(err.Error(), "invalid CID") {
				t.Fatalf("message %q", err)
			}
			return
		}
		// A parsed CID must survive a round trip through its string form.
		c2, err := ParseCID(c.String())
		if err != nil || !c2.Equals(c) {
			t.Fatalf("round trip of %q: %v", s, err)
		}
	})
}

func FuzzClassifyLine(f *testing.F) {
	for _, s := range []string{`{"done":1,"total":2}`, `{"error":"x","code":404}`, `{"cid":"x"}`, `{}`, `[]`, `1`, `{"done":"x"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := classifyLine(b)
		if err == nil && (k < lineResult || k > lineError) {
			t.Fatalf("kind %d", k)
		}
	})
}
