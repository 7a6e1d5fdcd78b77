package folder

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
)

// Entry is one path of a folder's index, as a device announces it.
type Entry struct {
	Path    string  // slash-separated, relative to the folder root, never "" or with "." / ".." elements
	Dir     bool    // a directory (CID undefined)
	Deleted bool    // a tombstone: the path was deleted at this version
	Mode    uint32  // permission bits (fs.ModePerm)
	Size    int64   // bytes of file data
	MTime   int64   // modification time, Unix nanoseconds
	CID     cid.Cid // UnixFS root of the content (files only; CIDv1, raw leaves)
	Version Vector  // version vector of this path
	Writer  ShortID // device that made this version
	Seq     uint64  // position in the announcing device's log
}

// ModTime returns MTime as a time.
func (e *Entry) ModTime() time.Time { return time.Unix(0, e.MTime) }

// sameContent reports whether a and b describe the same thing on disk
// (both deleted, or both directories, or files with the same CID), which
// is when concurrent versions need no conflict copy.
func sameContent(a, b *Entry) bool {
	if a.Deleted || b.Deleted {
		return a.Deleted == b.Deleted
	}
	if a.Dir || b.Dir {
		return a.Dir == b.Dir
	}
	return a.CID.Equals(b.CID)
}

// sameMeta reports whether a and b also agree on mode and mtime.
func sameMeta(a, b *Entry) bool {
	if a.Deleted && b.Deleted {
		return true
	}
	return a.Mode == b.Mode && (a.Dir || a.MTime == b.MTime)
}

// Limits of the encoding: anything larger is refused by the decoder.
const (
	maxPathLen  = 4096
	maxCounters = 1024
	maxCIDLen   = 128
)

var errMalformed = errors.New("malformed entry")

// validPath reports whether p is a clean relative slash path.
func validPath(p string) bool {
	if p == "" || len(p) > maxPathLen || strings.HasPrefix(p, "/") || strings.ContainsRune(p, 0) || strings.Contains(p, "\\") {
		return false
	}
	if path.Clean(p) != p {
		return false
	}
	for _, el := range strings.Split(p, "/") {
		if el == "." || el == ".." || el == "" {
			return false
		}
	}
	return true
}

const (
	flagDeleted = 1 << iota
	flagDir
	flagCID
)

// appendEntry appends the binary form of e to b.
//
//	path (uvarint length, bytes) | flags byte | mode uvarint | size uvarint |
//	mtime varint | [cid (uvarint length, bytes)] | writer 8 bytes |
//	seq uvarint | n uvarint | n × (id 8 bytes, value uvarint)
func appendEntry(b []byte, e *Entry) []byte {
	b = binary.AppendUvarint(b, uint64(len(e.Path)))
	b = append(b, e.Path...)
	var fl byte
	if e.Deleted {
		fl |= flagDeleted
	}
	if e.Dir {
		fl |= flagDir
	}
	if e.CID.Defined() {
		fl |= flagCID
	}
	b = append(b, fl)
	b = binary.AppendUvarint(b, uint64(e.Mode))
	b = binary.AppendUvarint(b, uint64(e.Size))
	b = binary.AppendVarint(b, e.MTime)
	if e.CID.Defined() {
		c := e.CID.Bytes()
		b = binary.AppendUvarint(b, uint64(len(c)))
		b = append(b, c...)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(e.Writer))
	b = binary.AppendUvarint(b, e.Seq)
	b = binary.AppendUvarint(b, uint64(len(e.Version)))
	for _, c := range e.Version {
		b = binary.BigEndian.AppendUint64(b, uint64(c.ID))
		b = binary.AppendUvarint(b, c.Value)
	}
	return b
}

// reader decodes the primitives of the encoding, remembering the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", errMalformed, what)
	}
}

func (r *reader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || n != uvarintLen(v) {
		r.fail(what) // truncated, overflowing or not minimal
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint(what string) int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 || n != uvarintLen(uint64(v)<<1^uint64(v>>63)) {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes(what string, limit int) []byte {
	n := r.uvarint(what)
	if r.err != nil {
		return nil
	}
	if n > uint64(limit) || n > uint64(len(r.b)) {
		r.fail(what)
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) byte1(what string) byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 1 {
		r.fail(what)
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) u64(what string) uint64 {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 8 {
		r.fail(what)
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

// uvarintLen is the length of v's minimal encoding: the decoder accepts
// only that, so that every value has exactly one encoding.
func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// entry decodes one entry and checks it.
func (r *reader) entry() Entry {
	var e Entry
	e.Path = string(r.bytes("path", maxPathLen))
	fl := r.byte1("flags")
	mode := r.uvarint("mode")
	size := r.uvarint("size")
	e.MTime = r.varint("mtime")
	if fl&flagCID != 0 {
		raw := r.bytes("cid", maxCIDLen)
		if r.err == nil {
			c, err := cid.Cast(raw)
			if err != nil {
				r.fail("cid")
			}
			e.CID = c
		}
	}
	e.Writer = ShortID(r.u64("writer"))
	e.Seq = r.uvarint("seq")
	n := r.uvarint("counters")
	if r.err != nil {
		return Entry{}
	}
	if fl&^(flagDeleted|flagDir|flagCID) != 0 || mode > uint64(fs.ModePerm) || size > 1<<62 || n > maxCounters || n > uint64(len(r.b)) {
		r.fail("range")
		return Entry{}
	}
	e.Deleted, e.Dir = fl&flagDeleted != 0, fl&flagDir != 0
	e.Mode, e.Size = uint32(mode), int64(size)
	if n > 0 {
		e.Version = make(Vector, 0, n)
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		c := Counter{ID: ShortID(r.u64("counter id")), Value: r.uvarint("counter")}
		if len(e.Version) > 0 && c.ID <= e.Version[len(e.Version)-1].ID || c.Value == 0 {
			r.fail("vector order")
		}
		e.Version = append(e.Version, c)
	}
	if r.err == nil && !validPath(e.Path) {
		r.fail("path")
	}
	if r.err == nil && !e.Deleted && !e.Dir && !e.CID.Defined() {
		r.fail("file without cid")
	}
	if r.err != nil {
		return Entry{}
	}
	return e
}

// decodeEntry decodes one entry that fills b entirely.
func decodeEntry(b []byte) (Entry, error) {
	r := &reader{b: b}
	e := r.entry()
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	return e, r.err
}

// record is the device's own entry for a path plus what the scanner needs
// to tell that the file on disk is unchanged.
type record struct {
	Entry
	Ino       uint64 // inode number on disk
	StatSize  int64  // size on disk when recorded
	StatMTime int64  // mtime on disk when recorded (ns)
	StatMode  uint32 // fs.FileMode on disk when recorded
}

func appendRecord(b []byte, r *record) []byte {
	b = appendEntry(b, &r.Entry)
	b = binary.AppendUvarint(b, r.Ino)
	b = binary.AppendUvarint(b, uint64(r.StatSize))
	b = binary.AppendVarint(b, r.StatMTime)
	b = binary.AppendUvarint(b, uint64(r.StatMode))
	return b
}

func decodeRecord(b []byte) (record, error) {
	r := &reader{b: b}
	var rec record
	rec.Entry = r.entry()
	rec.Ino = r.uvarint("ino")
	rec.StatSize = int64(r.uvarint("stat size"))
	rec.StatMTime = r.varint("stat mtime")
	rec.StatMode = uint32(r.uvarint("stat mode"))
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	return rec, r.err
}
