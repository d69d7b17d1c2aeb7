// Package powerfs is a FUSE file system that can lose power: a loopback
// over a backing directory that remembers what has been synced, and on
// PowerOff throws away everything that has not, the way a machine that
// loses power loses its page cache and its disk's write cache.
//
// A SIGKILL leaves the kernel's page cache intact: what a process wrote
// reaches the disk later, whether or not it called fsync. Under powerfs
// what was not synced is gone, so a program that forgot an fsync loses
// what it wrote.
//
// The model of durability (durable.go says how it is kept):
//
//   - A file's data and size become durable when the file is synced:
//     fsync(2), fdatasync(2), or msync(2) with MS_SYNC of a shared mapping
//     (the kernel writes the dirty pages back, then sends FSYNC). Writes
//     through write(2), through a shared mapping, truncations and
//     fallocate are all held until then. Closing a file (FUSE's FLUSH) is
//     not a sync.
//   - A directory's entries (creations, renames, unlinks, links, mkdir,
//     rmdir) become durable when the directory is synced: the names it
//     holds then, each naming the file it named then.
//   - Unless Options.StrictNames is set, syncing a file that was created
//     since its directory was last synced also makes its name durable, and
//     its parent's, up to the first directory that is durable already: what
//     ext4, XFS and btrfs do for a new file (POSIX does not promise it).
//   - PowerOff rebuilds the backing directory from the durable state alone:
//     the durable names of the root, recursively; each file with its
//     durable data (empty if it was never synced). A file linked under
//     several durable names comes back as hard links.
//
// What it does not model: torn writes within a sync (a sync is all or
// nothing, per file), reordering of writes before a sync (they are all
// lost), sync_file_range, syncfs(2) and sync(2) (not durability points
// here), a disk that lies about flushes, extended attributes and times
// (not kept across a power cut), and files that are neither regular,
// directories nor symbolic links.
//
// Mount it as root (it mounts with mount(2)). PowerOff must come after
// every process using the mount has been killed: it aborts the FUSE
// connection, so that whatever the kernel still holds (dirty pages of a
// shared mapping) is dropped, never written back.
package powerfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// FsNamePrefix begins the file system name (the first field of
// /proc/mounts) of every powerfs mount; the mounting process's ID follows,
// so that a stale mount can be told from a live one (Stale).
const FsNamePrefix = "powerfs-"

// cacheTimeout is how long the kernel may cache names and attributes. Only
// the mount changes the backing directory, so caching is safe.
const cacheTimeout = time.Second

// fusectlDir is where the kernel lists FUSE connections, each with an
// abort file.
const fusectlDir = "/sys/fs/fuse/connections"

// Options say what to mount where.
type Options struct {
	// Mountpoint is the directory the file system is mounted on.
	Mountpoint string
	// Backing is the directory that holds the files as the mount shows
	// them, synced or not. It is made if missing; whatever it holds when
	// mounted is taken as durable.
	Backing string
	// Store holds the durable copies of files' data; it is emptied at
	// every mount and must not be inside Backing.
	Store string
	// StrictNames keeps a new file's name from becoming durable unless its
	// directory is synced (POSIX), instead of with the file (ext4).
	StrictNames bool
}

// FS is one mount of the file system, from Mount to PowerOff or Unmount.
type FS struct {
	o      Options
	server *fuse.Server
	model  *model
	conn   uint32 // the FUSE connection's number, for its abort file

	mu   sync.Mutex
	done bool
}

// Errors.
var (
	// ErrUnmounted is an operation on a file system already powered off or
	// unmounted.
	ErrUnmounted = errors.New("powerfs: not mounted")
)

// Mount mounts a powerfs over o.Backing on o.Mountpoint; everything in
// o.Backing is taken as durable.
func Mount(o Options) (*FS, error) {
	for _, d := range []string{o.Mountpoint, o.Backing, o.Store} {
		if d == "" {
			return nil, errors.New("powerfs: Mountpoint, Backing and Store are all needed")
		}
	}
	var err error
	for _, p := range []*string{&o.Mountpoint, &o.Backing, &o.Store} {
		if *p, err = filepath.Abs(*p); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(*p, 0o755); err != nil {
			return nil, err
		}
	}
	if strings.HasPrefix(o.Store+"/", o.Backing+"/") {
		return nil, errors.New("powerfs: the store must not be inside the backing directory")
	}
	m, err := newModel(o.Backing, o.Store, o.StrictNames)
	if err != nil {
		return nil, err
	}
	var st syscall.Stat_t
	if err := syscall.Stat(o.Backing, &st); err != nil {
		return nil, err
	}
	root := &fs.LoopbackRoot{Path: o.Backing, Dev: uint64(st.Dev)}
	rootNode := &node{LoopbackNode: &fs.LoopbackNode{RootData: root}, m: m}
	root.RootNode = rootNode
	timeout := cacheTimeout
	server, err := fs.Mount(o.Mountpoint, rootNode, &fs.Options{
		EntryTimeout: &timeout,
		AttrTimeout:  &timeout,
		MountOptions: fuse.MountOptions{
			FsName:      FsNamePrefix + strconv.Itoa(os.Getpid()),
			Name:        "powerfs",
			AllowOther:  true,
			DirectMount: true,
			// No writeback cache: write(2) reaches the file system at
			// once, and only shared mappings' pages wait in the kernel,
			// which PowerOff drops by aborting the connection.
			DisableXAttrs: true,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("powerfs: cannot mount %s: %w", o.Mountpoint, err)
	}
	f := &FS{o: o, server: server, model: m}
	if err := syscall.Stat(o.Mountpoint, &st); err == nil {
		f.conn = unix.Minor(uint64(st.Dev))
	}
	return f, nil
}

// Options returns the options the file system was mounted with.
func (f *FS) Options() Options { return f.o }

// PowerOff cuts the power: from now on nothing the mount is asked to do
// becomes durable, the FUSE connection is aborted (whatever the kernel
// still held for it is dropped), the mount is detached, and the backing
// directory is rebuilt from what was durable. It returns what was lost.
// Kill every process using the mount first. Mount the same Options again
// to power on.
func (f *FS) PowerOff() (Loss, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done {
		return Loss{}, ErrUnmounted
	}
	f.done = true
	loss := f.model.powerOff()
	// Detach first: once no process holds the mount, the kernel tears it
	// down; abort the connection too, in case one still does, so that
	// nothing the kernel holds is ever written back. (What would be is
	// ignored anyway: the model took its last sync above.)
	var errs []error
	detach := syscall.Unmount(f.o.Mountpoint, syscall.MNT_DETACH)
	if err := f.abort(); err != nil {
		errs = append(errs, err)
	}
	if detach != nil {
		if err := syscall.Unmount(f.o.Mountpoint, syscall.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("powerfs: cannot detach %s: %w (then %w)", f.o.Mountpoint, detach, err))
		}
	}
	f.server.Wait()
	if err := f.model.rebuild(); err != nil {
		errs = append(errs, err)
	}
	return loss, errors.Join(errs...)
}

// fusectlMagic is the type of the fusectl file system (statfs).
const fusectlMagic = 0x65735543

// abort aborts the FUSE connection through fusectl, mounting fusectl if it
// is not mounted. A connection already gone is not an error.
func (f *FS) abort() error {
	if f.conn == 0 {
		return errors.New("powerfs: the connection's number is unknown")
	}
	var sfs syscall.Statfs_t
	if err := syscall.Statfs(fusectlDir, &sfs); err != nil || sfs.Type != fusectlMagic {
		if err := syscall.Mount("fusectl", fusectlDir, "fusectl", 0, ""); err != nil && !errors.Is(err, syscall.EBUSY) {
			return fmt.Errorf("powerfs: cannot mount fusectl on %s: %w", fusectlDir, err)
		}
	}
	path := filepath.Join(fusectlDir, strconv.FormatUint(uint64(f.conn), 10), "abort")
	err := os.WriteFile(path, []byte("1"), 0)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("powerfs: cannot abort the FUSE connection: %w", err)
	}
	return nil
}

// Unmount unmounts the file system in order, keeping everything written,
// synced or not: the end of a run, not a power cut.
func (f *FS) Unmount() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done {
		return nil
	}
	f.done = true
	err := f.server.Unmount()
	if err != nil {
		// Busy: detach it, and abort so that the server returns.
		err = errors.Join(err, syscall.Unmount(f.o.Mountpoint, syscall.MNT_DETACH), f.abort())
	}
	f.server.Wait()
	return err
}

// Stale returns the mount points of powerfs mounts whose process has
// gone: a harness killed before it unmounted left them.
func Stale() ([]string, error) {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 || !strings.HasPrefix(fields[0], FsNamePrefix) {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimPrefix(fields[0], FsNamePrefix))
		if err != nil {
			continue
		}
		if pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		out = append(out, unescapeMount(fields[1]))
	}
	return out, nil
}

// unescapeMount undoes /proc/mounts' octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				sb.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		sb.WriteByte(s[i])
	}
	return sb.String()
}
