package api

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
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

func FuzzDecodeCloudRequests(f *testing.F) {
	for _, s := range []string{`{"ttl":"15m","admin":true}`, `{"ttl":"-1s"}`, `{"ttl":"9999999h"}`, `{}`,
		`{"device":"phone"}`, `{"device":"phone","name":"tablet"}`, `{"code":"pcnode1x","name":"b","role":"server","admin":true}`,
		`{"code":"x","role":"king"}`, `{"device":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var inv InviteRequest
		err := decodeInviteRequest(strings.NewReader(string(b)), &inv)
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("invite: %v", err)
		}
		if err == nil {
			d, err := ParseInviteTTL(inv.TTL)
			if err != nil || d < 0 || d > MaxInviteTTL {
				t.Fatalf("accepted ttl %q: %v %v", inv.TTL, d, err)
			}
		}
		for _, rename := range []bool{false, true} {
			var d DeviceRequest
			err := decodeDeviceRequest(strings.NewReader(string(b)), &d, rename)
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Fatalf("device: %v", err)
			}
			if err == nil && (d.Device == "" || rename && d.Name == "") {
				t.Fatalf("accepted %q (rename %v) without device or name", b, rename)
			}
		}
		var j JoinRequest
		err = decodeJoinRequest(strings.NewReader(string(b)), &j)
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("join: %v", err)
		}
		if err == nil && (j.Code == "" || j.Role != "" && j.Role != "device" && j.Role != "server") {
			t.Fatalf("accepted join %+v", j)
		}
	})
}

func FuzzDecodeConflictResolveRequest(f *testing.F) {
	for _, s := range []string{
		`{"folder":"f","path":"a.sync-conflict-20260102-030405-ABC.txt","keep":"keep-copy"}`,
		`{"folder":"f","path":"a.txt","keep":"keep-copy"}`,
		`{"folder":"f","path":"a.sync-conflict-20260102-030405-ABC","keep":"both"}`,
		`{"path":"x"}`, `{}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var req ConflictResolveRequest
		err := decodeConflictResolveRequest(strings.NewReader(string(b)), &req)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v for %q is not ErrInvalid", err, b)
			}
			return
		}
		if _, ok := ConflictOriginal(req.Path); !ok || req.Folder == "" || (req.Keep != KeepCopy && req.Keep != KeepOriginal) {
			t.Fatalf("accepted %q: %+v", b, req)
		}
	})
}

// The session endpoint decodes its body only after the origin check; a
// fuzzed body with a right origin never signs in without the token.
func FuzzSessionSignIn(f *testing.F) {
	for _, s := range []string{`{"token":"x"}`, `{"token":""}`, `{}`, ``, `{"token":"` + testToken + `"}`, `{"token":"` + testToken + `"} x`} {
		f.Add([]byte(s))
	}
	h := NewHandler(newFake(cid.Undef), HandlerConfig{Token: testToken})
	f.Fuzz(func(t *testing.T, b []byte) {
		req := httptest.NewRequest("POST", SessionPath, bytes.NewReader(b))
		req.Host = "127.0.0.1:5480"
		req.Header.Set("Origin", "http://127.0.0.1:5480")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var sr SessionRequest
		valid := decodeJSON(bytes.NewReader(b), &sr) == nil && strings.TrimSpace(sr.Token) == testToken
		if (rec.Code == 200) != valid {
			t.Fatalf("sign-in with %q: %d", b, rec.Code)
		}
		if rec.Code != 200 && len(rec.Result().Cookies()) != 0 {
			t.Fatalf("failed sign-in set a cookie")
		}
	})
}
