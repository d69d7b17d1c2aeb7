package cluster

// Backup and restore of a whole state through the data directory, for a
// node that is not running. A running node's backup is a View: its read
// transaction sees the state at one applied index, and WriteSnapshot
// streams it.
//
// A restore does not write the state itself: it installs the backup as a
// Raft snapshot, at the backup's applied index, whose configuration is
// this node alone. At its next start the node finds its state behind that
// snapshot and loads it (restoreIfBehind), and Raft starts after the
// snapshot's index, so the restored node leads a cluster of one with the
// backup's state and log indexes that go on from it. Nodes that join it
// receive the snapshot over Raft as any node that is far behind does.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
)

// ViewDataDir runs fn in a read transaction on the state of the stopped
// node whose data directory is dataDir. It fails, saying so, when a
// running node holds the directory.
func ViewDataDir(dataDir string, fn func(txn *badger.Txn) error) error {
	dir := filepath.Join(dataDir, "state")
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("%s holds no node state: %w", dataDir, err)
	}
	logger := slog.New(slog.DiscardHandler)
	db, err := openBadger(badgerOptions(dir, false, logger), logger)
	if err != nil {
		return fmt.Errorf("cannot open the state in %s (is the node still running? stop it, or take the backup over the API): %w", dataDir, err)
	}
	defer db.Close()
	return db.View(fn)
}

// HasState reports whether dataDir holds a node's Raft log, state or
// snapshots.
func HasState(dataDir string) (bool, error) {
	for _, sub := range []string{"raft", "state", "snapshots"} {
		ents, err := os.ReadDir(filepath.Join(dataDir, sub))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return false, err
		}
		if len(ents) > 0 {
			return true, nil
		}
	}
	return false, nil
}

// WipeState removes the Raft log, the state and the snapshots from
// dataDir, and nothing else (the node's ID and trust stay).
func WipeState(dataDir string) error {
	for _, sub := range []string{"raft", "state", "snapshots"} {
		if err := os.RemoveAll(filepath.Join(dataDir, sub)); err != nil {
			return fmt.Errorf("cannot remove %s: %w", sub, err)
		}
	}
	return nil
}

// RestoreDataDir installs the snapshot stream r in dataDir as a Raft
// snapshot whose configuration is the one voter nodeID at addr, the
// cluster address it will be reached at, and keeps nodeID as the data
// directory's node ID. dataDir must hold no state
// (HasState). record is called with each key and value as they are read,
// and check with the stream's applied index once the stream's checksum has
// been verified; an error from either stops the restore and leaves dataDir
// as it was. It returns the applied index.
func RestoreDataDir(dataDir, nodeID, addr string, r io.Reader, record func(key, value []byte) error, check func(applied uint64) error) (uint64, error) {
	if has, err := HasState(dataDir); err != nil || has {
		if err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("%s already holds a node's state", dataDir)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return 0, err
	}
	tmp, err := os.CreateTemp(dataDir, "restore-*.tmp")
	if err != nil {
		return 0, fmt.Errorf("cannot write in %s: %w", dataDir, err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()

	var applied uint64
	err = ScanSnapshot(io.TeeReader(r, tmp), func(k, v []byte) error {
		if string(k) == string(keyApplied) {
			if len(v) != 8 {
				return fmt.Errorf("applied index has %d bytes", len(v))
			}
			applied = binary.BigEndian.Uint64(v)
		}
		if record != nil {
			return record(k, v)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("the backup's state: %w", err)
	}
	if applied == 0 {
		return 0, errors.New("the backup's state has no applied index: it is empty")
	}
	if check != nil {
		if err := check(applied); err != nil {
			return 0, err
		}
	}
	if _, err := loadNodeID(dataDir, nodeID); err != nil {
		return 0, err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	snapDir := filepath.Join(dataDir, "snapshots")
	store, err := raft.NewFileSnapshotStoreWithLogger(snapDir, DefaultSnapshotRetain, newHCLogger(slog.New(slog.DiscardHandler), "snapshot", nil))
	if err != nil {
		return 0, fmt.Errorf("cannot make the snapshot store: %w", err)
	}
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(nodeID), Address: raft.ServerAddress(addr)}}}
	// Term 1: the node's first election takes term 1 or later, and its
	// log's first entry comes after the snapshot.
	sink, err := store.Create(raft.SnapshotVersionMax, applied, 1, conf, applied, peerEncoder{})
	if err != nil {
		return 0, fmt.Errorf("cannot make the snapshot: %w", err)
	}
	if _, err := io.Copy(sink, tmp); err != nil {
		_ = sink.Cancel()
		os.RemoveAll(snapDir)
		return 0, fmt.Errorf("cannot write the snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		os.RemoveAll(snapDir)
		return 0, fmt.Errorf("cannot write the snapshot: %w", err)
	}
	return applied, syncDir(snapDir)
}

// peerEncoder encodes the legacy peer list of a snapshot's metadata as
// the network transport does (the address's bytes); Raft reads the
// configuration, not that list, from snapshots of version 1.
type peerEncoder struct{ raft.Transport }

func (peerEncoder) EncodePeer(_ raft.ServerID, addr raft.ServerAddress) []byte { return []byte(addr) }
