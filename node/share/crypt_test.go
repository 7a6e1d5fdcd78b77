package share

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/google/go-cmp/cmp"
)

// readTree maps each file's slash path to its content, and each directory
// to "<dir>".
func readTree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			out[rel] = "<dir>"
			return nil
		}
		b, err := os.ReadFile(p)
		out[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSealUnsealFile(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "in.bin")
	data := randBytes(200<<10+17, 5)
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	var ct bytes.Buffer
	n, skipped, err := Seal(&ct, src, k)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(data)+len(headerFile)) || len(skipped) != 0 {
		t.Errorf("Seal wrote %d plaintext bytes, skipped %v", n, skipped)
	}
	if bytes.Contains(ct.Bytes(), data[:64]) {
		t.Error("ciphertext contains plaintext")
	}

	k2, err := ParseKey(k.String())
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "out.bin")
	got, err := Unseal(bytes.NewReader(ct.Bytes()), k2, dst)
	if err != nil {
		t.Fatal(err)
	}
	if got != int64(len(data)) {
		t.Errorf("Unseal wrote %d bytes", got)
	}
	b, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(b, data) {
		t.Fatalf("output differs (err %v)", err)
	}
	if _, err := Unseal(bytes.NewReader(ct.Bytes()), k2, dst); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Unseal over an existing output: %v", err)
	}
}

func TestSealUnsealDir(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "album")
	files := map[string]string{
		"a.txt":         "alpha",
		"sub/b.txt":     "beta",
		"sub/deep/c":    strings.Repeat("c", 100000),
		"empty.txt":     "",
		"sp ace/ü.json": "{}",
	}
	for p, c := range files {
		fp := filepath.Join(src, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(fp), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(fp, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(src, "emptydir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a.txt", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	k, _ := NewKey()
	var ct bytes.Buffer
	_, skipped, err := Seal(&ct, src, k)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"link"}, skipped); diff != "" {
		t.Errorf("skipped (-want +got):\n%s", diff)
	}
	dst := filepath.Join(dir, "out")
	if _, err := Unseal(&ct, k, dst); err != nil {
		t.Fatal(err)
	}
	want := readTree(t, src)
	delete(want, "link")
	if diff := cmp.Diff(want, readTree(t, dst)); diff != "" {
		t.Errorf("unpacked tree (-want +got):\n%s", diff)
	}
}

func TestUnsealRefuses(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "f")
	if err := os.WriteFile(src, randBytes(300<<10, 3), 0o644); err != nil {
		t.Fatal(err)
	}
	k, _ := NewKey()
	other, _ := NewKey()
	var ct bytes.Buffer
	if _, _, err := Seal(&ct, src, k); err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(ct.Bytes())
	tampered[len(tampered)-100] ^= 1

	// A tar that tries to write outside the output folder, sealed properly.
	var evil bytes.Buffer
	w, _ := age.Encrypt(&evil, k.id.Recipient())
	io.WriteString(w, headerTar)
	tw := tar.NewWriter(w)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "../escape", Size: 1, Mode: 0o644})
	tw.Write([]byte("x"))
	tw.Close()
	w.Close()

	// A tar with a symlink entry.
	var link bytes.Buffer
	w, _ = age.Encrypt(&link, k.id.Recipient())
	io.WriteString(w, headerTar)
	tw = tar.NewWriter(w)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "l", Linkname: "/etc/passwd"})
	tw.Close()
	w.Close()

	// A stream that is not a pcnode share.
	var foreign bytes.Buffer
	w, _ = age.Encrypt(&foreign, k.id.Recipient())
	io.WriteString(w, "hello world, no header here")
	w.Close()

	tests := []struct {
		name string
		ct   []byte
		key  Key
		is   error
		say  string
	}{
		{"wrong key", ct.Bytes(), other, ErrKey, ""},
		{"no key", ct.Bytes(), Key{}, ErrKey, ""},
		{"tampered", tampered, k, nil, ""},
		{"truncated", ct.Bytes()[:len(ct.Bytes())/2], k, nil, ""},
		{"not age", []byte("plain text"), k, nil, ""},
		{"escaping tar", evil.Bytes(), k, nil, "escapes"},
		{"symlink in tar", link.Bytes(), k, nil, "not allowed"},
		{"no header", foreign.Bytes(), k, nil, "unknown header"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub := filepath.Join(dir, "case", string(rune('a'+i)))
			if err := os.MkdirAll(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(sub, "out")
			_, err := Unseal(bytes.NewReader(tt.ct), tt.key, dst)
			if err == nil {
				t.Fatal("Unseal succeeded")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
			if tt.say != "" && !strings.Contains(err.Error(), tt.say) {
				t.Errorf("error %q does not say %q", err, tt.say)
			}
			ents, _ := os.ReadDir(sub)
			if len(ents) != 0 {
				t.Errorf("left behind %v", ents)
			}
			if _, err := os.Lstat(filepath.Join(dir, "case", "escape")); err == nil {
				t.Error("a file escaped the output folder")
			}
		})
	}
	if _, err := ParseKey("AGE-SECRET-KEY-1NOPE"); !errors.Is(err, ErrKey) {
		t.Errorf("ParseKey of garbage: %v", err)
	}
}

// TestUnsealLargeFile: a file of several 8 MiB chunks and an unaligned
// tail comes out whole; a stream that fails after chunks were written
// (tampered or cut near the end) leaves nothing beside the output.
func TestUnsealLargeFile(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "in.bin")
	data := randBytes(2*unsealChunk+5<<20+12345, 9)
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	k, _ := NewKey()
	var ct bytes.Buffer
	if _, _, err := Seal(&ct, src, k); err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(ct.Bytes())
	tampered[len(tampered)-1000] ^= 1
	for i, tt := range []struct {
		name string
		ct   []byte
		ok   bool
	}{
		{"whole", ct.Bytes(), true},
		{"tampered near the end", tampered, false},
		{"cut after two chunks", ct.Bytes()[:ct.Len()-4<<20], false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sub := filepath.Join(dir, "case", string(rune('a'+i)))
			if err := os.MkdirAll(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(sub, "out")
			n, err := Unseal(bytes.NewReader(tt.ct), k, dst)
			if !tt.ok {
				if err == nil {
					t.Fatal("Unseal succeeded")
				}
				if ents, _ := os.ReadDir(sub); len(ents) != 0 {
					t.Errorf("left behind %v", ents)
				}
				return
			}
			if err != nil || n != int64(len(data)) {
				t.Fatalf("Unseal = %d, %v; want %d", n, err, len(data))
			}
			if b, err := os.ReadFile(dst); err != nil || !bytes.Equal(b, data) {
				t.Fatalf("output differs (err %v)", err)
			}
			if ents, _ := os.ReadDir(sub); len(ents) != 1 {
				t.Errorf("beside the output: %v", ents)
			}
			if _, err := Unseal(bytes.NewReader(tt.ct), k, dst); !errors.Is(err, fs.ErrExist) {
				t.Errorf("Unseal over an existing file = %v, want ErrExist", err)
			}
		})
	}
}
