package appliance

// The data directory is its user's alone: it holds the Raft log, the state
// and its snapshots, with the hashes of the workers' PINs, the operators'
// passwords and the devices' secrets, and the cluster CA's key. A 4 to 8
// digit PIN falls to an offline search of its hash in hours, so whoever
// can read a snapshot can find the PINs (docs/install.md, "The data
// directory").

import (
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
)

// Modes of the data directory.
const (
	// dataDirMode is the mode of the data directory and the directories
	// in it.
	dataDirMode = 0o700
	// privateUmask is the umask of a node: every file and directory it
	// makes (Badger's, the snapshots, the trust) is its user's alone.
	privateUmask = 0o077
)

const logKeyFiles = "files"

// secureDataDir makes dir, the node's data directory, its user's alone
// before the node writes to it: it sets the process's umask to
// privateUmask, makes dir with dataDirMode if it is missing, and takes the
// group's and others' permissions off dir and everything in it (a
// directory made by a package or by an older version, 0755 and 0644). It
// logs a warning naming how many it changed.
func secureDataDir(dir string, logger *slog.Logger) error {
	syscall.Umask(privateUmask)
	if err := os.MkdirAll(dir, dataDirMode); err != nil {
		return fmt.Errorf("cannot make data_dir %s: %w", dir, err)
	}
	changed := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil // its target's mode is not the data directory's to change
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		perm := fi.Mode().Perm()
		if perm&privateUmask == 0 {
			return nil
		}
		if err := os.Chmod(path, perm&^privateUmask); err != nil {
			return fmt.Errorf("cannot make %s private to its user: %w", path, err)
		}
		changed++
		return nil
	})
	if err != nil {
		return fmt.Errorf("cannot secure data_dir %s: %w", dir, err)
	}
	if changed > 0 {
		logger.Warn("the data directory was open to other users: its files are now its user's alone",
			"dir", dir, logKeyFiles, changed)
	}
	return nil
}
