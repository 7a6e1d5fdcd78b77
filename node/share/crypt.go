package share

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"unsafe"

	"filippo.io/age"

	"github.com/pcnode/pcnode/blobstore"
)

// The plaintext of an encrypted share starts with one header line that
// says what follows, so that a reader knows whether to write a file or to
// unpack a folder; being inside the ciphertext, it is authenticated with
// the content.
const (
	headerFile = "pcnode-share/1 file\n"
	headerTar  = "pcnode-share/1 tar\n"
	maxHeader  = 64
)

// ErrKey is wrapped when a key is missing or does not open the ciphertext.
var ErrKey = errors.New("wrong or missing key")

// Key is an encrypted share's key: an age X25519 identity, generated per
// share.
type Key struct{ id *age.X25519Identity }

// NewKey generates a key.
func NewKey() (Key, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return Key{}, fmt.Errorf("share: new key: %w", err)
	}
	return Key{id}, nil
}

// ParseKey reads the string form, "AGE-SECRET-KEY-1...".
func ParseKey(s string) (Key, error) {
	if s == "" {
		return Key{}, fmt.Errorf("share: parse key: %w", ErrKey)
	}
	id, err := age.ParseX25519Identity(s)
	if err != nil {
		return Key{}, fmt.Errorf("share: parse key: %w: not an age X25519 identity", ErrKey)
	}
	return Key{id}, nil
}

// String is the identity in age's string form; it is the secret.
func (k Key) String() string {
	if k.id == nil {
		return ""
	}
	return k.id.String()
}

// Seal writes the file or directory tree at path to dst as one age stream
// encrypted to k: a header line, then the file's bytes or, for a directory,
// a tar archive (regular files and directories; symlinks and special files
// are skipped and returned in skipped). It returns the plaintext bytes
// written. The caller imports dst's bytes as a UnixFS file.
func Seal(dst io.Writer, path string, k Key) (n int64, skipped []string, err error) {
	if k.id == nil {
		return 0, nil, fmt.Errorf("share: seal %s: %w", path, ErrKey)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return 0, nil, fmt.Errorf("share: seal %s: %w", path, err)
	}
	w, err := age.Encrypt(dst, k.id.Recipient())
	if err != nil {
		return 0, nil, fmt.Errorf("share: seal %s: %w", path, err)
	}
	cw := &countWriter{w: w}
	if fi.IsDir() {
		skipped, err = sealDir(cw, path)
	} else {
		err = sealFile(cw, path)
	}
	if err == nil {
		err = w.Close()
	}
	if err != nil {
		return 0, nil, fmt.Errorf("share: seal %s: %w", path, err)
	}
	return cw.n, skipped, nil
}

func sealFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.WriteString(w, headerFile); err != nil {
		return err
	}
	_, err = io.Copy(w, f)
	return err
}

func sealDir(w io.Writer, root string) ([]string, error) {
	if _, err := io.WriteString(w, headerTar); err != nil {
		return nil, err
	}
	tw := tar.NewWriter(w)
	var skipped []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: rel + "/", Mode: int64(fi.Mode().Perm()), ModTime: fi.ModTime()})
		case fi.Mode().IsRegular():
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: int64(fi.Mode().Perm()), Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
				return err
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			// A file that grows while it is read would break the
			// archive; copy exactly the size announced.
			_, err = io.CopyN(tw, f, fi.Size())
			return err
		default:
			skipped = append(skipped, rel)
			return nil
		}
	})
	if err != nil {
		return nil, err
	}
	return skipped, tw.Close()
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Unseal decrypts src, a stream made by Seal, with k and writes the item
// to dst, which must not exist: a file, or a directory unpacked from the
// tar archive. It writes under a hidden temporary name beside dst and
// renames it into place (never replacing anything) only once everything
// was decrypted, authenticated and made durable, so dst appears whole or
// not at all; a failure or crash leaves at most a hidden
// `.<name>.pcnode-tmp-*` entry. A file is written with O_DIRECT where it
// can be (see unsealFile). A wrong key fails with ErrKey before anything is
// written; tampered ciphertext fails when the damaged chunk is read. It
// returns the bytes of file data written.
func Unseal(src io.Reader, k Key, dst string) (int64, error) {
	if k.id == nil {
		return 0, fmt.Errorf("share: unseal %s: %w", dst, ErrKey)
	}
	r, err := age.Decrypt(src, k.id)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return 0, fmt.Errorf("share: unseal %s: %w", dst, ErrKey)
		}
		return 0, fmt.Errorf("share: unseal %s: %w", dst, err)
	}
	br := bufio.NewReader(r)
	hdr, err := readHeader(br)
	if err != nil {
		return 0, fmt.Errorf("share: unseal %s: %w", dst, err)
	}
	if _, err := os.Lstat(dst); err == nil {
		return 0, fmt.Errorf("share: unseal %s: %w", dst, fs.ErrExist)
	}
	dir := filepath.Dir(dst)
	var n int64
	switch hdr {
	case headerFile:
		n, err = unsealFile(br, dst)
	case headerTar:
		n, err = unsealTar(br, dir, dst)
	}
	if err != nil {
		return 0, fmt.Errorf("share: unseal %s: %w", dst, err)
	}
	return n, nil
}

func readHeader(r *bufio.Reader) (string, error) {
	var b strings.Builder
	for b.Len() < maxHeader {
		c, err := r.ReadByte()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", fmt.Errorf("read header: %w", err)
		}
		b.WriteByte(c)
		if c == '\n' {
			break
		}
	}
	switch h := b.String(); h {
	case headerFile, headerTar:
		return h, nil
	}
	return "", errors.New("not a pcnode encrypted share (unknown header)")
}

// unsealChunk is how much plaintext is decrypted before it is handed to
// the writer: 8 MiB requests keep the disk busier than small ones (see
// blobstore.StagedFile.WriteBuffers), and two of them let decryption go
// on while the other is written.
const unsealChunk = 8 << 20

// unsealFile writes the plaintext r to dst through a blobstore.StagedFile:
// whole 8 MiB chunks (page aligned) go to the disk with O_DIRECT, not
// through the page cache, and the file is published (fsynced, renamed
// without replacing anything, directory fsynced) only once all of r was
// read and authenticated. Before, the whole file went through the page
// cache and was fsynced at the end: a 1 GiB share spent seconds in that
// last fsync after the decryption was done. Decryption (this goroutine)
// and writing (another) overlap, one chunk apart.
func unsealFile(r io.Reader, dst string) (int64, error) {
	sf, err := blobstore.CreateStaged(dst)
	if err != nil {
		return 0, err
	}
	free := make(chan []byte, 2)
	for range 2 {
		free <- alignedBuf(unsealChunk)
	}
	full := make(chan []byte, 1)
	werr := make(chan error, 1)
	var failed atomic.Bool
	go func() {
		var err error
		for b := range full {
			if err == nil {
				if _, err = sf.Write(b); err != nil {
					failed.Store(true)
				}
			}
			free <- b[:cap(b)]
		}
		werr <- err
	}()
	var rerr error
	for !failed.Load() {
		b := <-free
		n, err := io.ReadFull(r, b)
		if n > 0 {
			full <- b[:n]
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			rerr = err
			break
		}
	}
	close(full)
	if err := <-werr; rerr == nil {
		rerr = err
	}
	if rerr != nil {
		sf.Abort()
		return 0, rerr
	}
	return sf.Commit()
}

// alignedBuf returns n bytes starting at a multiple of 4096, which
// O_DIRECT needs (Go aligns large allocations to its 8 KiB pages already;
// this does not rely on it).
func alignedBuf(n int) []byte {
	const align = 4096
	b := make([]byte, n+align)
	off := int(uintptr(align)-uintptr(unsafe.Pointer(unsafe.SliceData(b)))%align) % align
	return b[off : off+n : off+n]
}

func unsealTar(r io.Reader, dir, dst string) (int64, error) {
	tmp, err := os.MkdirTemp(dir, "."+filepath.Base(dst)+".pcnode-tmp-*")
	if err != nil {
		return 0, err
	}
	n, err := untar(r, tmp)
	if err == nil {
		err = renameNoReplace(tmp, dst)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return 0, err
	}
	return n, syncDir(dir)
}

// untar unpacks regular files and directories into root, refusing any
// name that would land outside it and any other entry type.
func untar(r io.Reader, root string) (int64, error) {
	tr := tar.NewReader(r)
	var total int64
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
		name := strings.TrimSuffix(h.Name, "/")
		if !filepath.IsLocal(filepath.FromSlash(name)) || strings.Contains(name, `\`) {
			return 0, fmt.Errorf("archive entry %q escapes the folder", h.Name)
		}
		p := filepath.Join(root, filepath.FromSlash(name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return 0, err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return 0, err
			}
			mode := os.FileMode(h.Mode).Perm()&0o755 | 0o600
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
			if err != nil {
				return 0, err
			}
			n, err := io.Copy(f, tr)
			if err == nil {
				err = f.Sync()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return 0, err
			}
			total += n
		default:
			return 0, fmt.Errorf("archive entry %q: type %q not allowed", h.Name, h.Typeflag)
		}
	}
	return total, nil
}

// renameNoReplace renames old to new unless new exists. The check and the
// rename are two steps; two writers racing for one output is the caller's
// business.
func renameNoReplace(old, new string) error {
	if _, err := os.Lstat(new); err == nil {
		return fmt.Errorf("%s: %w", new, fs.ErrExist)
	}
	return os.Rename(old, new)
}
