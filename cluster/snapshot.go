package cluster

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
)

// Snapshot stream format, version 1:
//
//	magic "VIGILSNAP" | version byte
//	records: uvarint(len key) key uvarint(len value) value   (len key > 0)
//	end:     uvarint(0) | uint32 CRC-32C (Castagnoli) of every byte before it
//
// The stream is every key of the state database, host keys included, so the
// applied index travels with the state it describes.
var snapMagic = []byte("VIGILSNAP")

const snapVersion byte = 1

var crcTable = crc32.MakeTable(crc32.Castagnoli)

type fsmSnapshot struct {
	txn *badger.Txn
}

var _ raft.FSMSnapshot = (*fsmSnapshot)(nil)

// Persist streams the state as of the snapshot's read transaction.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := writeSnapshot(s.txn, sink); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

// Release ends the read transaction.
func (s *fsmSnapshot) Release() { s.txn.Discard() }

// WriteSnapshot writes every key of the state that txn reads, the host's
// keys (the applied index, the command records) included, as a snapshot
// stream: what Raft sends a follower that is too far behind, and what a
// backup holds. ScanSnapshot reads it back.
func WriteSnapshot(txn *badger.Txn, w io.Writer) error { return writeSnapshot(txn, w) }

func writeSnapshot(txn *badger.Txn, w io.Writer) error {
	crc := crc32.New(crcTable)
	bw := bufio.NewWriterSize(io.MultiWriter(w, crc), 256<<10)
	bw.Write(snapMagic)
	bw.WriteByte(snapVersion)
	var lenBuf [binary.MaxVarintLen64]byte
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 64})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		k := item.Key()
		bw.Write(lenBuf[:binary.PutUvarint(lenBuf[:], uint64(len(k)))])
		bw.Write(k)
		err := item.Value(func(v []byte) error {
			bw.Write(lenBuf[:binary.PutUvarint(lenBuf[:], uint64(len(v)))])
			_, err := bw.Write(v)
			return err
		})
		if err != nil {
			return fmt.Errorf("cannot write snapshot: %w", err)
		}
	}
	bw.WriteByte(0)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("cannot write snapshot: %w", err)
	}
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], crc.Sum32())
	if _, err := w.Write(sum[:]); err != nil {
		return fmt.Errorf("cannot write snapshot: %w", err)
	}
	return nil
}

// readSnapshot loads a snapshot stream into an empty database, checking its
// checksum before the last batch is flushed.
func readSnapshot(r io.Reader, db *badger.DB) error {
	wb := db.NewWriteBatch()
	defer wb.Cancel()
	if err := ScanSnapshot(r, func(k, v []byte) error { return wb.Set(k, v) }); err != nil {
		return err
	}
	return wb.Flush()
}

// ScanSnapshot reads a snapshot stream (WriteSnapshot's), calling record
// with each key and value in key order, and checks the stream's checksum
// at its end: a caller must not trust what it was given before ScanSnapshot
// returned nil. record owns the slices it is given.
func ScanSnapshot(r io.Reader, record func(key, value []byte) error) error {
	br := bufio.NewReaderSize(r, 256<<10)
	cr := &crcReader{r: br, h: crc32.New(crcTable)}
	head := make([]byte, len(snapMagic)+1)
	if _, err := io.ReadFull(cr, head); err != nil {
		return fmt.Errorf("snapshot header: %w", err)
	}
	if !bytes.Equal(head[:len(snapMagic)], snapMagic) {
		return errors.New("not a Vigil snapshot")
	}
	if head[len(snapMagic)] != snapVersion {
		return fmt.Errorf("unknown snapshot version %d", head[len(snapMagic)])
	}
	for {
		klen, err := binary.ReadUvarint(cr)
		if err != nil {
			return fmt.Errorf("snapshot record: %w", err)
		}
		if klen == 0 {
			break
		}
		if klen > maxSnapKey {
			return fmt.Errorf("snapshot key of %d bytes, more than %d", klen, maxSnapKey)
		}
		key := make([]byte, klen)
		if _, err := io.ReadFull(cr, key); err != nil {
			return fmt.Errorf("snapshot key: %w", err)
		}
		vlen, err := binary.ReadUvarint(cr)
		if err != nil {
			return fmt.Errorf("snapshot record: %w", err)
		}
		val, err := readN(cr, vlen)
		if err != nil {
			return fmt.Errorf("snapshot value: %w", err)
		}
		if err := record(key, val); err != nil {
			return err
		}
	}
	var sum [4]byte
	if _, err := io.ReadFull(br, sum[:]); err != nil {
		return fmt.Errorf("snapshot trailer: %w", err)
	}
	if got, want := cr.h.Sum32(), binary.BigEndian.Uint32(sum[:]); got != want {
		return fmt.Errorf("snapshot checksum mismatch: %08x, want %08x", got, want)
	}
	return nil
}

// maxSnapKey is the longest key a snapshot may hold: Badger's own limit.
const maxSnapKey = 65000

// readN reads n bytes from r. The length comes from the stream, so memory
// grows with the bytes actually read: a corrupt length of terabytes ends
// at the end of the stream, not in a make that kills the node.
func readN(r io.Reader, n uint64) ([]byte, error) {
	if n <= 64<<10 {
		b := make([]byte, n)
		_, err := io.ReadFull(r, b)
		return b, err
	}
	var buf bytes.Buffer
	got, err := io.CopyN(&buf, r, int64(min(n, math.MaxInt64)))
	if err == io.EOF && uint64(got) < n {
		err = io.ErrUnexpectedEOF
	}
	return buf.Bytes(), err
}

// crcReader checksums every byte read through it.
type crcReader struct {
	r *bufio.Reader
	h hash.Hash32
}

func (c *crcReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	return n, err
}

func (c *crcReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.h.Write([]byte{b})
	}
	return b, err
}
