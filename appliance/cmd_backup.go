package appliance

// vigil backup, vigil backup inspect and vigil restore (docs/install.md,
// "Backup and restore"). A backup is the whole replicated state at one
// applied index, encrypted on the machine that runs the command with the
// operator's key (internal/backupfile). A restore installs it in the empty
// data directory of a new appliance, which then leads a cluster of one
// with that state; the other appliances join it with a token as for a new
// cluster. The restored cluster has its own CA: the trust (data_dir/tls)
// is never in a backup.

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/cluster"
	"github.com/vigilarc/vigil/internal/backupfile"
)

// backupCmd is vigil backup and vigil backup inspect.
func (c *cli) backupCmd(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "inspect" {
		return c.backupInspect(args[1:])
	}
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	addr := addrFlag(fs, c.lookupEnv)
	auth := addAuthFlags(fs)
	keyFile := fs.String("key-file", "", "the `file` whose contents are the backup's key (a passphrase, or: head -c 32 /dev/urandom | base64)")
	out := fs.String("out", "", "the backup `file` to write (it must not exist)")
	stopped := fs.Bool("stopped", false, "read the state from the data directory (--data-dir, else the configuration's) of a stopped node instead of over the API")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: vigil backup --key-file FILE --out FILE [--addr URL] [--token TOKEN | --config FILE | --data-dir DIR]
       vigil backup --stopped --key-file FILE --out FILE [--config FILE | --data-dir DIR]
       vigil backup inspect --key-file FILE BACKUP

Writes the cluster's whole replicated state (organisations, workers,
devices, sessions, alarms, accounts, the audit log) as of one applied index
to an encrypted file. Over the API (an admin token) from a running node,
which goes on serving; with --stopped from the data directory of a stopped
node. The state is checked (its checksum and its hash) before the file is
complete; the file is written under a temporary name and renamed. The key
never leaves this machine. inspect decrypts a backup and prints what it
holds: the applied index, the state hash, when and from which node.

`+clientAuthHelp+`
Flags:
`)
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr(fs, "unexpected argument %q", pos[0])
	}
	if *keyFile == "" || *out == "" {
		return usageErr(fs, "give --key-file and --out")
	}
	key, err := backupfile.ReadKeyFile(*keyFile)
	if err != nil {
		return err
	}
	if _, err := os.Stat(*out); err == nil {
		return fmt.Errorf("--out %s exists: choose a new file name", *out)
	}
	var meta backupfile.Meta
	write := func(w io.Writer) error {
		if *stopped {
			meta, err = backupDataDir(c, auth, w)
			return err
		}
		meta, err = backupAPI(ctx, c, c.localAddr(fs, *addr, auth), auth, w)
		return err
	}
	if err := writeBackupFile(*out, key, write); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "wrote %s: applied index %d, state hash %s, from node %s (%s)\n",
		*out, meta.AppliedIndex, meta.StateHash, meta.NodeID, meta.Source)
	return nil
}

// writeBackupFile writes a backup to path: payload writes the plaintext
// (the description, then the snapshot stream) and returns once it has
// checked it. The file appears under its name only when complete.
func writeBackupFile(path string, key []byte, payload func(io.Writer) error) error {
	tmp := path + ".partial"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("cannot write the backup: %w", err)
	}
	defer os.Remove(tmp)
	bw := bufio.NewWriterSize(f, 1<<20)
	w, err := backupfile.NewWriter(bw, key)
	if err == nil {
		err = payload(w)
	}
	if err == nil {
		err = w.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("cannot write the backup: %w", err)
	}
	return nil
}

// copyChecked copies a payload from r to w, checking the snapshot
// stream's checksum and that its state has the hash the description
// names. edit may change the description first. It returns the
// description.
func copyChecked(r io.Reader, w io.Writer, edit func(*backupfile.Meta)) (backupfile.Meta, error) {
	br := bufio.NewReader(r)
	meta, err := backupfile.ReadMeta(br)
	if err != nil {
		return meta, err
	}
	if edit != nil {
		edit(&meta)
	}
	if err := backupfile.WriteMeta(w, meta); err != nil {
		return meta, err
	}
	tee := io.TeeReader(br, w)
	h := monitoring.NewStateHasher()
	if err := cluster.ScanSnapshot(tee, func(k, v []byte) error { h.Add(k, v); return nil }); err != nil {
		return meta, fmt.Errorf("the state read is damaged or cut short: %w", err)
	}
	if got := hex.EncodeToString(h.Sum()); got != meta.StateHash {
		return meta, fmt.Errorf("the state read has hash %s, not the %s its description names", got, meta.StateHash)
	}
	if n, err := io.Copy(io.Discard, tee); err != nil || n > 0 {
		return meta, fmt.Errorf("the state read has %d bytes after its end (%v)", n, err)
	}
	return meta, nil
}

// backupAPI streams a running node's state (GET /api/v1/backup) into w.
func backupAPI(ctx context.Context, c *cli, addr string, auth *authOptions, w io.Writer) (backupfile.Meta, error) {
	client, err := newAPIClient(addr, 0)
	if err != nil {
		return backupfile.Meta{}, err
	}
	if err := c.authorise(client, auth); err != nil {
		return backupfile.Meta{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, client.base+"/api/v1/backup", nil)
	if err != nil {
		return backupfile.Meta{}, err
	}
	if client.token != "" {
		req.Header.Set("Authorization", "Bearer "+client.token)
	}
	resp, err := client.http.Do(req)
	if err != nil {
		return backupfile.Meta{}, fmt.Errorf("cannot reach %s: %w", client.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// The error reply, read and explained as for any other command.
		_, err := client.do(ctx, http.MethodGet, "/api/v1/backup", nil)
		if err == nil {
			err = fmt.Errorf("HTTP %d from %s", resp.StatusCode, client.base)
		}
		return backupfile.Meta{}, err
	}
	return copyChecked(resp.Body, w, func(m *backupfile.Meta) { m.VigilVersion = Version })
}

// backupDataDir writes the state of a stopped node's data directory to w.
func backupDataDir(c *cli, auth *authOptions, w io.Writer) (backupfile.Meta, error) {
	dataDir := auth.dataDir
	if dataDir == "" {
		path := auth.config
		if path == "" {
			path, _ = c.lookupEnv(EnvPrefix + "CONFIG")
		}
		cfg, err := LoadConfig(path, c.lookupEnv)
		if err != nil {
			return backupfile.Meta{}, err
		}
		dataDir = cfg.DataDir
	}
	var meta backupfile.Meta
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		var err error
		meta, err = copyChecked(pr, w, nil)
		pr.CloseWithError(err)
		done <- err
	}()
	err := cluster.ViewDataDir(dataDir, func(txn *badger.Txn) error {
		applied, err := cluster.AppliedIndex(txn)
		if err != nil {
			return err
		}
		hash, err := monitoring.StateHash(txn)
		if err != nil {
			return err
		}
		id, _ := os.ReadFile(filepath.Join(dataDir, "node-id"))
		m := backupfile.Meta{Format: 1, AppliedIndex: applied, StateHash: hex.EncodeToString(hash), Created: time.Now().UTC(),
			NodeID: string(trimSpace(id)), Source: "data_dir", VigilVersion: Version}
		if err := backupfile.WriteMeta(pw, m); err != nil {
			return err
		}
		return cluster.WriteSnapshot(txn, pw)
	})
	pw.CloseWithError(err)
	if cerr := <-done; err == nil {
		err = cerr
	}
	return meta, err
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// readBackup opens the backup at path with the key in keyFile and reads
// its description; the snapshot stream follows in the returned reader.
func readBackup(path, keyFile string) (*bufio.Reader, backupfile.Meta, func(), error) {
	key, err := backupfile.ReadKeyFile(keyFile)
	if err != nil {
		return nil, backupfile.Meta{}, nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, backupfile.Meta{}, nil, fmt.Errorf("cannot open the backup: %w", err)
	}
	r, err := backupfile.NewReader(f, key)
	if err != nil {
		f.Close()
		return nil, backupfile.Meta{}, nil, fmt.Errorf("%s: %w", path, err)
	}
	br := bufio.NewReaderSize(r, 256<<10)
	meta, err := backupfile.ReadMeta(br)
	if err != nil {
		f.Close()
		return nil, meta, nil, fmt.Errorf("%s: %w", path, err)
	}
	return br, meta, func() { f.Close() }, nil
}

// backupInspect is vigil backup inspect.
func (c *cli) backupInspect(args []string) error {
	fs := flag.NewFlagSet("backup inspect", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	keyFile := fs.String("key-file", "", "the `file` holding the backup's key")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *keyFile == "" {
		return usageErr(fs, "usage: vigil backup inspect --key-file FILE BACKUP")
	}
	br, meta, closeFn, err := readBackup(pos[0], *keyFile)
	if err != nil {
		return err
	}
	defer closeFn()
	h := monitoring.NewStateHasher()
	records := 0
	if err := cluster.ScanSnapshot(br, func(k, v []byte) error { h.Add(k, v); records++; return nil }); err != nil {
		return fmt.Errorf("%s: the state in it is damaged: %w", pos[0], err)
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: %w", pos[0], orErr(err, backupfile.ErrCorrupt))
	}
	verdict := "matches"
	if hex.EncodeToString(h.Sum()) != meta.StateHash {
		verdict = "DOES NOT MATCH"
	}
	fmt.Fprintf(c.stdout, "applied index:  %d\nstate hash:     %s (%s the state in the file)\ncreated:        %s\nnode:           %s\nsource:         %s\nvigil version:  %s\nrecords:        %d\n",
		meta.AppliedIndex, meta.StateHash, verdict, meta.Created.Format(time.RFC3339), meta.NodeID, meta.Source, meta.VigilVersion, records)
	if verdict != "matches" {
		return errors.New("the backup's state does not have the hash it records")
	}
	return nil
}

func orErr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}

// restoreCmd is vigil restore.
func (c *cli) restoreCmd(_ context.Context, args []string) error {
	fs, o := serveFlags(c.stderr)
	fs.Init("restore", flag.ContinueOnError)
	keyFile := fs.String("key-file", "", "the `file` holding the backup's key")
	force := fs.Bool("force", false, "remove the Raft log, state and snapshots already in the data directory first (its node ID and trust stay)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: vigil restore --key-file FILE [--force] [serve's flags] BACKUP

Installs a backup in this appliance's data directory, which must hold no
state (a new appliance: run vigil init first, then restore, then vigil
serve). The appliance then starts as the one member of a cluster holding
the backup's state, at the backup's applied index and state hash; the
other appliances join it with vigil join and the token vigil init printed.
The backup is checked (key, integrity, state hash) before anything is
written. It takes the same configuration as vigil serve: the data
directory, the node's ID and its cluster address (cluster.advertise_addr,
else cluster.bind_addr, with a fixed port) come from it.

Flags:
`)
		fs.PrintDefaults()
	}
	cfg, pos, err := parseConfigFlags(fs, o, args, c.lookupEnv)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr(fs, "give the backup file")
	}
	if *keyFile == "" {
		return usageErr(fs, "give --key-file")
	}
	addr := cfg.Cluster.AdvertiseAddr
	if addr == "" {
		addr = cfg.Cluster.BindAddr
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "0" || port == "" || isWildcard(host) {
		return fmt.Errorf("cluster.bind_addr %q: a restore needs the address the other appliances reach this one at, with a fixed port (or set cluster.advertise_addr)", addr)
	}
	trust, err := loadTrust(cfg.DataDir)
	if err != nil {
		return err
	}
	id, err := nodeIdentity(cfg, trust)
	if err != nil {
		return err
	}
	has, err := cluster.HasState(cfg.DataDir)
	if err != nil {
		return err
	}
	if has && !*force {
		return fmt.Errorf("%s already holds a node's state: restore into a new appliance's empty data directory, or give --force to remove that state first", cfg.DataDir)
	}
	br, meta, closeFn, err := readBackup(pos[0], *keyFile)
	if err != nil {
		return err
	}
	defer closeFn()
	if has {
		if err := cluster.WipeState(cfg.DataDir); err != nil {
			return err
		}
	}
	if err := secureDataDir(cfg.DataDir, slog.New(slog.DiscardHandler)); err != nil {
		return err
	}
	h := monitoring.NewStateHasher()
	record := func(k, v []byte) error { h.Add(k, v); return nil }
	check := func(applied uint64) error {
		if applied != meta.AppliedIndex {
			return fmt.Errorf("%s: the state is at index %d, not the %d its description names", pos[0], applied, meta.AppliedIndex)
		}
		if got := hex.EncodeToString(h.Sum()); got != meta.StateHash {
			return fmt.Errorf("%s: the state has hash %s, not the %s its description names", pos[0], got, meta.StateHash)
		}
		if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: %w", pos[0], orErr(err, backupfile.ErrCorrupt))
		}
		return nil
	}
	applied, err := cluster.RestoreDataDir(cfg.DataDir, id, addr, br, record, check)
	if err != nil {
		return fmt.Errorf("cannot restore: %w", err)
	}
	fmt.Fprintf(c.stdout, "restored %s into %s: applied index %d, state hash %s, taken %s from node %s.\n"+
		"This appliance (node %s, cluster address %s) now starts as the one member of a cluster with that state: vigil serve, then vigil join the others.\n",
		pos[0], cfg.DataDir, applied, meta.StateHash, meta.Created.Format(time.RFC3339), meta.NodeID, id, addr)
	return nil
}
