// Package backupfile is the format of a Vigil backup: the whole replicated
// state at one applied index, encrypted under a key the operator keeps.
//
// A backup file is
//
//	header: magic "VIGILBAK" | version 1 | KDF 1 (argon2id) | time uint32 |
//	        memory KiB uint32 | threads uint8 | salt [16] | nonce prefix [15] |
//	        key check [32]
//	chunks: uint32 length | XChaCha20-Poly1305 sealed chunk (at most
//	        ChunkSize bytes of plaintext and its 16-byte tag)
//
// The key is argon2id of the key file's contents (a passphrase, or random
// bytes made with `head -c 32 /dev/urandom | base64`) with the header's
// salt and parameters: 64 bytes, the first 32 the AEAD key, the last 32
// the key check kept in the header, so that a wrong key is told apart
// from a damaged file. Each chunk's nonce is the prefix, the chunk's
// number (uint64) and a byte that is 1 on the last chunk only (the STREAM
// construction): chunks cannot be reordered, dropped or cut off at the end
// without the reader noticing. Every chunk authenticates the whole header
// as associated data.
//
// The plaintext is a payload: uvarint(length) and the Meta as JSON, then
// the cluster's snapshot stream (cluster.WriteSnapshot), which carries its
// own checksum. The Meta is encrypted too: `vigil backup inspect` shows it
// with the key.
package backupfile

import (
	"bufio"
	"bytes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// Magic begins every backup file.
var Magic = []byte("VIGILBAK")

// Version is the version of the format this package writes and reads.
const Version byte = 1

const kdfArgon2id byte = 1

// ChunkSize is the most plaintext one chunk holds.
const ChunkSize = 64 << 10

// The argon2id parameters of new files (RFC 9106's second recommended
// option, with 64 MiB): about a quarter of a second on an appliance.
const (
	DefaultKDFTime    = 3
	DefaultKDFMemory  = 64 << 10 // KiB
	DefaultKDFThreads = 4
)

// The parameters NewWriter uses: the defaults, lowered by this package's
// tests only.
var kdfTime, kdfMemory uint32 = DefaultKDFTime, DefaultKDFMemory

// Bounds a reader accepts, so that a hostile header cannot make it spend
// hours or gigabytes deriving a key.
const (
	maxKDFTime    = 20
	maxKDFMemory  = 1 << 20 // 1 GiB, in KiB
	minKeyLen     = 12
	headerLen     = 8 + 1 + 1 + 4 + 4 + 1 + 16 + 15 + 32
	chunkOverhead = chacha20poly1305.Overhead
	maxMetaLen    = 1 << 16
)

// Meta says what a backup holds. It is inside the encryption.
type Meta struct {
	// Format is the payload's version: 1.
	Format int `json:"format"`
	// AppliedIndex is the Raft log index of the state the backup holds.
	AppliedIndex uint64 `json:"applied_index"`
	// StateHash is the hex SHA-256 of the state (monitoring.StateHash), as
	// GET /api/v1/diag/state shows it: a cluster restored from the backup
	// has this hash until it applies a new command.
	StateHash string `json:"state_hash"`
	// Created is when the state was read.
	Created time.Time `json:"created"`
	// NodeID is the node whose state was read.
	NodeID string `json:"node_id"`
	// Source is "api" for a running node's, "data_dir" for a stopped
	// node's data directory.
	Source string `json:"source"`
	// VigilVersion is the version of the vigil that wrote the file.
	VigilVersion string `json:"vigil_version,omitempty"`
}

// Errors a reader returns; each message says what is wrong with the file.
var (
	ErrNotBackup = errors.New("not a Vigil backup file (no VIGILBAK header)")
	ErrWrongKey  = errors.New("wrong key: this backup was encrypted with another key file")
	ErrTruncated = errors.New("the backup file is truncated: it ends before its last chunk")
	ErrCorrupt   = errors.New("the backup file is corrupted")
)

// ReadKeyFile reads the key from path: its contents less trailing
// white space, at least 12 bytes.
func ReadKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the key file: %w", err)
	}
	k := []byte(strings.TrimRight(string(b), " \t\r\n"))
	if len(k) < minKeyLen {
		return nil, fmt.Errorf("the key file %s holds %d bytes: a backup key needs at least %d (make one with: head -c 32 /dev/urandom | base64 > %s)",
			path, len(k), minKeyLen, path)
	}
	return k, nil
}

type header struct {
	time, memory uint32
	threads      uint8
	salt         [16]byte
	prefix       [15]byte
	check        [32]byte
}

func (h *header) marshal() []byte {
	b := make([]byte, 0, headerLen)
	b = append(b, Magic...)
	b = append(b, Version, kdfArgon2id)
	b = binary.BigEndian.AppendUint32(b, h.time)
	b = binary.BigEndian.AppendUint32(b, h.memory)
	b = append(b, h.threads)
	b = append(b, h.salt[:]...)
	b = append(b, h.prefix[:]...)
	return append(b, h.check[:]...)
}

func parseHeader(b []byte) (*header, error) {
	if !bytes.Equal(b[:len(Magic)], Magic) {
		return nil, ErrNotBackup
	}
	if b[8] != Version {
		return nil, fmt.Errorf("backup format version %d: this vigil reads version %d; use a newer vigil", b[8], Version)
	}
	if b[9] != kdfArgon2id {
		return nil, fmt.Errorf("%w: unknown key derivation %d", ErrCorrupt, b[9])
	}
	h := &header{time: binary.BigEndian.Uint32(b[10:]), memory: binary.BigEndian.Uint32(b[14:]), threads: b[18]}
	if h.time == 0 || h.time > maxKDFTime || h.memory < 8*uint32(max(h.threads, 1)) || h.memory > maxKDFMemory || h.threads == 0 {
		return nil, fmt.Errorf("%w: key derivation parameters out of bounds (time %d, memory %d KiB, threads %d)", ErrCorrupt, h.time, h.memory, h.threads)
	}
	copy(h.salt[:], b[19:35])
	copy(h.prefix[:], b[35:50])
	copy(h.check[:], b[50:82])
	return h, nil
}

func (h *header) derive(key []byte) (aead, check []byte) {
	k := argon2.IDKey(key, h.salt[:], h.time, h.memory, h.threads, 64)
	return k[:32], k[32:]
}

func nonce(prefix [15]byte, n uint64, last bool) []byte {
	b := make([]byte, 0, chacha20poly1305.NonceSizeX)
	b = append(b, prefix[:]...)
	b = binary.BigEndian.AppendUint64(b, n)
	if last {
		return append(b, 1)
	}
	return append(b, 0)
}

// Writer encrypts a backup. Close writes the last chunk: a file whose
// Writer was not closed reads as truncated.
type Writer struct {
	w      io.Writer
	aead   cipher.AEAD
	head   []byte
	prefix [15]byte
	buf    []byte
	n      uint64
	err    error
}

// NewWriter writes the header to w and returns a Writer that encrypts
// what is written to it under key.
func NewWriter(w io.Writer, key []byte) (*Writer, error) {
	h := &header{time: kdfTime, memory: kdfMemory, threads: DefaultKDFThreads}
	if _, err := rand.Read(h.salt[:]); err != nil {
		return nil, err
	}
	if _, err := rand.Read(h.prefix[:]); err != nil {
		return nil, err
	}
	k, check := h.derive(key)
	copy(h.check[:], check)
	aead, err := chacha20poly1305.NewX(k)
	if err != nil {
		return nil, err
	}
	head := h.marshal()
	if _, err := w.Write(head); err != nil {
		return nil, err
	}
	return &Writer{w: w, aead: aead, head: head, prefix: h.prefix, buf: make([]byte, 0, ChunkSize)}, nil
}

// Write encrypts p, a chunk at a time.
func (w *Writer) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 && w.err == nil {
		if len(w.buf) == ChunkSize {
			w.err = w.flush(false)
			continue
		}
		c := copy(w.buf[len(w.buf):ChunkSize], p)
		w.buf = w.buf[:len(w.buf)+c]
		p = p[c:]
		written += c
	}
	return written, w.err
}

func (w *Writer) flush(last bool) error {
	sealed := w.aead.Seal(nil, nonce(w.prefix, w.n, last), w.buf, w.head)
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(sealed)))
	if _, err := w.w.Write(l[:]); err != nil {
		return err
	}
	if _, err := w.w.Write(sealed); err != nil {
		return err
	}
	w.n++
	w.buf = w.buf[:0]
	return nil
}

// Close writes the last chunk. It does not close the underlying writer.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	w.err = w.flush(true)
	if w.err == nil {
		w.err = errors.New("backupfile: writer closed")
		return nil
	}
	return w.err
}

// Reader decrypts a backup, checking each chunk before it hands out a byte
// of it. Its errors name the problem: ErrWrongKey, ErrTruncated,
// ErrCorrupt (with the chunk), ErrNotBackup.
type Reader struct {
	r      *bufio.Reader
	aead   cipher.AEAD
	head   []byte
	prefix [15]byte
	buf    []byte
	n      uint64
	done   bool
	err    error
}

// NewReader reads the header from r and checks key against it.
func NewReader(r io.Reader, key []byte) (*Reader, error) {
	br := bufio.NewReaderSize(r, ChunkSize+chunkOverhead+4)
	head := make([]byte, headerLen)
	if n, err := io.ReadFull(br, head); err != nil {
		if n >= len(Magic) && !bytes.Equal(head[:len(Magic)], Magic) || n < len(Magic) && !bytes.HasPrefix(Magic, head[:n]) {
			return nil, ErrNotBackup
		}
		return nil, fmt.Errorf("%w: its header is cut short (%d of %d bytes)", ErrTruncated, n, headerLen)
	}
	h, err := parseHeader(head)
	if err != nil {
		return nil, err
	}
	k, check := h.derive(key)
	if subtle.ConstantTimeCompare(check, h.check[:]) != 1 {
		return nil, ErrWrongKey
	}
	aead, err := chacha20poly1305.NewX(k)
	if err != nil {
		return nil, err
	}
	return &Reader{r: br, aead: aead, head: head, prefix: h.prefix}, nil
}

// Read returns decrypted plaintext; io.EOF only after the last chunk,
// checked, and nothing after it.
func (r *Reader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.done {
			return 0, io.EOF
		}
		r.err = r.next()
	}
	c := copy(p, r.buf)
	r.buf = r.buf[c:]
	return c, nil
}

func (r *Reader) next() error {
	var l [4]byte
	if _, err := io.ReadFull(r.r, l[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return ErrTruncated
		}
		return err
	}
	size := binary.BigEndian.Uint32(l[:])
	if size < chunkOverhead || size > ChunkSize+chunkOverhead {
		return fmt.Errorf("%w: chunk %d has a length of %d bytes", ErrCorrupt, r.n, size)
	}
	sealed := make([]byte, size)
	if _, err := io.ReadFull(r.r, sealed); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return ErrTruncated
		}
		return err
	}
	// A failed Open clears its output: decrypt into a buffer of its own,
	// so the sealed chunk is still there for the second try.
	plain, err := r.aead.Open(nil, nonce(r.prefix, r.n, false), sealed, r.head)
	if err != nil {
		// The last chunk is sealed with its own nonce.
		var lerr error
		plain, lerr = r.aead.Open(nil, nonce(r.prefix, r.n, true), sealed, r.head)
		if lerr != nil {
			return fmt.Errorf("%w: chunk %d fails its authentication", ErrCorrupt, r.n)
		}
		r.done = true
		if _, err := r.r.ReadByte(); err == nil {
			return fmt.Errorf("%w: there are bytes after its last chunk", ErrCorrupt)
		}
	}
	r.n++
	r.buf = plain
	return nil
}

// WriteMeta writes the head of a payload: the Meta, before the snapshot
// stream.
func WriteMeta(w io.Writer, m Meta) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = w.Write(append(binary.AppendUvarint(nil, uint64(len(b))), b...))
	return err
}

// ReadMeta reads the head of a payload from r; the snapshot stream follows.
func ReadMeta(r io.ByteReader) (Meta, error) {
	var m Meta
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return m, fmt.Errorf("cannot read the backup's description: %w", err)
	}
	if n > maxMetaLen {
		return m, fmt.Errorf("%w: a description of %d bytes", ErrCorrupt, n)
	}
	b := make([]byte, n)
	for i := range b {
		if b[i], err = r.ReadByte(); err != nil {
			return m, fmt.Errorf("cannot read the backup's description: %w", err)
		}
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%w: its description is not JSON: %v", ErrCorrupt, err)
	}
	if m.Format != 1 {
		return m, fmt.Errorf("backup payload format %d: this vigil reads format 1; use a newer vigil", m.Format)
	}
	return m, nil
}
