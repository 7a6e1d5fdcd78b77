package share

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseKey: the key part of an encrypted link is attacker-chosen text;
// any input either parses into a key whose string form parses back to the
// same key, or fails with ErrKey.
func FuzzParseKey(f *testing.F) {
	k, err := NewKey()
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{k.String(), "", "AGE-SECRET-KEY-1", "AGE-SECRET-KEY-1NOPE", strings.ToLower(k.String())} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKey(s)
		if err != nil {
			return
		}
		k2, err := ParseKey(k.String())
		if err != nil || k2.String() != k.String() {
			t.Fatalf("round trip of %q: %q, %v", s, k2.String(), err)
		}
	})
}

// FuzzReadHeader: the first line of a decrypted stream chooses how it is
// unpacked; only the two known headers are accepted and at most maxHeader
// bytes are read.
func FuzzReadHeader(f *testing.F) {
	for _, s := range []string{headerFile, headerTar, "", "\n", strings.Repeat("x", 5000), headerFile[:len(headerFile)-1]} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReader(bytes.NewReader(b))
		h, err := readHeader(r)
		if err != nil {
			return
		}
		if h != headerFile && h != headerTar {
			t.Fatalf("accepted header %q", h)
		}
		if !bytes.HasPrefix(b, []byte(h)) {
			t.Fatalf("header %q is not the start of the input", h)
		}
	})
}

// FuzzReadRegistry: the registry file in the node's home may be damaged;
// loading it either fails or gives shares with distinct valid IDs and
// defined roots.
func FuzzReadRegistry(f *testing.F) {
	f.Add([]byte(`{"version":1,"shares":[]}`))
	f.Add([]byte(`{"version":1,"shares":[null]}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`{"version":1,"shares":[{"id":"abc","root":{"/":"bafkqaaa"}}]}`))
	f.Add([]byte(`not json`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, "shares.json")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		shares, err := readRegistry(path)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, s := range shares {
			if s == nil || !validID(s.ID) || seen[s.ID] || !s.Root.Defined() {
				t.Fatalf("accepted a bad record: %+v", s)
			}
			seen[s.ID] = true
		}
		if _, err := json.Marshal(shares); err != nil {
			t.Fatalf("accepted shares do not marshal: %v", err)
		}
	})
}
