package powerfs

// The model of what is durable.
//
// Files are known by their backing inode and its birth time (an inode
// number alone is reused once a file is deleted). For each file the model
// keeps the ranges written since its last sync; a sync copies those
// ranges, and the size, from the backing file into the file's durable
// copy in the store. For each directory it keeps the entries it had when
// it was last synced (or mounted), each naming a file by identity. What
// the backing directory holds beyond that is what a power cut loses.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// copyChunk is how much a copy reads at a time.
const copyChunk = 1 << 20

// errPoweredOff answers a sync that comes after the power cut.
var errPoweredOff = syscall.EIO

// fileID identifies a backing file or directory.
type fileID struct {
	ino   uint64
	btime int64 // birth time, in nanoseconds
}

// name is the file's name in the store.
func (id fileID) name() string {
	return strconv.FormatUint(id.ino, 10) + "." + strconv.FormatInt(id.btime, 10)
}

// entry is a durable directory entry.
type entry struct {
	id     fileID
	mode   uint32 // type and permissions
	target string // a symbolic link's
}

// span is a range of bytes written since the last sync, [lo, hi).
type span struct{ lo, hi int64 }

// fileState is what the model knows of a file's unsynced changes.
type fileState struct {
	mu    sync.Mutex
	dirty []span // sorted, disjoint
	// syncMu makes a file's syncs one at a time.
	syncMu sync.Mutex
}

// add records [lo, hi) as changed.
func (st *fileState) add(lo, hi int64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.dirty = addSpan(st.dirty, span{lo, hi})
}

// take returns the changed ranges and forgets them.
func (st *fileState) take() []span {
	st.mu.Lock()
	defer st.mu.Unlock()
	d := st.dirty
	st.dirty = nil
	return d
}

// addSpan adds s to the sorted, disjoint spans ss, merging what touches it.
func addSpan(ss []span, s span) []span {
	if s.hi <= s.lo {
		return ss
	}
	i := 0
	for i < len(ss) && ss[i].hi < s.lo {
		i++
	}
	j := i
	for j < len(ss) && ss[j].lo <= s.hi {
		s.lo, s.hi = min(s.lo, ss[j].lo), max(s.hi, ss[j].hi)
		j++
	}
	return slices.Insert(slices.Delete(ss, i, j), i, s)
}

// model is the durable state of one mount.
type model struct {
	backing, store string
	strict         bool

	// power is held shared by every sync and exclusively by powerOff, so
	// that no sync is half done when the power goes.
	power sync.RWMutex
	off   bool

	mu     sync.Mutex
	root   fileID
	dirs   map[fileID]map[string]entry // each directory's durable entries
	files  map[fileID]*fileState
	stored map[fileID]bool // has a durable copy in the store
}

// newModel takes everything in backing as durable: it records every
// directory's entries and copies every file into the emptied store.
func newModel(backing, store string, strict bool) (*model, error) {
	if err := os.RemoveAll(store); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(store, 0o700); err != nil {
		return nil, err
	}
	m := &model{backing: backing, store: store, strict: strict,
		dirs: map[fileID]map[string]entry{}, files: map[fileID]*fileState{}, stored: map[fileID]bool{}}
	var err error
	if m.root, _, err = pathID(backing); err != nil {
		return nil, err
	}
	err = filepath.WalkDir(backing, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		id, mode, err := pathID(p)
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			ents, err := readEntries(p)
			if err != nil {
				return err
			}
			m.dirs[id] = ents
		case mode&unix.S_IFMT == unix.S_IFREG && !m.stored[id]:
			if err := copySparse(p, filepath.Join(store, id.name())); err != nil {
				return err
			}
			m.stored[id] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("powerfs: cannot take %s as durable: %w", backing, err)
	}
	return m, nil
}

// state returns the file's state, made if need be.
func (m *model) state(id fileID) *fileState {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.files[id]
	if st == nil {
		st = &fileState{}
		m.files[id] = st
	}
	return st
}

// changed records that [lo, hi) of the file changed; hi < 0 means up to
// any size (a truncation to lo).
func (m *model) changed(id fileID, lo, hi int64) {
	if hi < 0 {
		hi = math.MaxInt64
	}
	m.state(id).add(lo, hi)
}

// syncFile makes the open backing file fd durable: its size, and every
// range changed since its last sync. path is where the mount sees it;
// unless the names are strict, a name not durable yet becomes durable
// with it.
func (m *model) syncFile(fd int, path string) error {
	m.power.RLock()
	defer m.power.RUnlock()
	if m.off {
		return errPoweredOff
	}
	id, _, err := fdID(fd)
	if err != nil {
		return err
	}
	st := m.state(id)
	st.syncMu.Lock()
	defer st.syncMu.Unlock()
	dirty := st.take()
	if err := m.copyRanges(fd, id, dirty); err != nil {
		for _, s := range dirty {
			st.add(s.lo, s.hi)
		}
		return err
	}
	m.mu.Lock()
	m.stored[id] = true
	m.mu.Unlock()
	if !m.strict {
		return m.linkUp(path, id)
	}
	return nil
}

// copyRanges copies the size and the ranges of the backing file fd into
// its durable copy.
func (m *model) copyRanges(fd int, id fileID, dirty []span) error {
	// Read through a descriptor of our own: the caller's may be write-only.
	src, err := os.Open("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return err
	}
	defer src.Close()
	info, err := src.Stat()
	if err != nil {
		return err
	}
	size := info.Size()
	dst, err := os.OpenFile(filepath.Join(m.store, id.name()), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer dst.Close()
	if err := dst.Truncate(size); err != nil {
		return err
	}
	buf := make([]byte, copyChunk)
	for _, s := range dirty {
		for off := s.lo; off < min(s.hi, size); {
			n := int(min(int64(len(buf)), min(s.hi, size)-off))
			r, err := src.ReadAt(buf[:n], off)
			if r > 0 {
				if _, werr := dst.WriteAt(buf[:r], off); werr != nil {
					return werr
				}
				off += int64(r)
			}
			if errors.Is(err, io.EOF) {
				break // it shrank meanwhile: the next sync has the truncation
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// syncDir makes the directory's entries durable, as they are now.
func (m *model) syncDir(path string) error {
	m.power.RLock()
	defer m.power.RUnlock()
	if m.off {
		return errPoweredOff
	}
	id, _, err := pathID(path)
	if err != nil {
		return err
	}
	ents, err := readEntries(path)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.dirs[id] = ents
	m.mu.Unlock()
	if !m.strict {
		return m.linkUp(path, id)
	}
	return nil
}

// linkUp makes the name path durable in its directory if it names id and
// is not durable yet, then its directory's name in turn, up to the first
// name already durable: what ext4, XFS and btrfs do when a new file is
// synced.
func (m *model) linkUp(path string, id fileID) error {
	for path != m.backing && len(path) > len(m.backing) {
		cid, mode, err := pathID(path)
		if err != nil || cid != id {
			return nil // renamed or removed meanwhile: nothing to link
		}
		parent := filepath.Dir(path)
		pid, _, err := pathID(parent)
		if err != nil {
			return nil
		}
		e := entry{id: cid, mode: mode}
		if mode&unix.S_IFMT == unix.S_IFLNK {
			if e.target, err = os.Readlink(path); err != nil {
				return err
			}
		}
		m.mu.Lock()
		d := m.dirs[pid]
		if d == nil {
			d = map[string]entry{}
			m.dirs[pid] = d
		}
		old, had := d[filepath.Base(path)]
		d[filepath.Base(path)] = e
		m.mu.Unlock()
		if had && old.id == cid {
			return nil
		}
		path, id = parent, pid
	}
	return nil
}

// Loss is what a power cut threw away: the changes to files' data since
// their last sync.
type Loss struct {
	Files int   // files with changes not synced
	Bytes int64 // bytes written and not synced (truncations not counted)
}

// powerOff makes every later sync fail, once syncs under way have
// finished, and returns what was not synced.
func (m *model) powerOff() Loss {
	m.power.Lock()
	defer m.power.Unlock()
	m.off = true
	m.mu.Lock()
	defer m.mu.Unlock()
	var l Loss
	for _, st := range m.files {
		st.mu.Lock()
		if len(st.dirty) > 0 {
			l.Files++
		}
		for _, s := range st.dirty {
			if s.hi != math.MaxInt64 {
				l.Bytes += s.hi - s.lo
			}
		}
		st.mu.Unlock()
	}
	return l
}

// rebuild replaces the backing directory by its durable state, and
// empties the store.
func (m *model) rebuild() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	next := m.backing + ".powercut"
	if err := os.RemoveAll(next); err != nil {
		return err
	}
	if err := os.Mkdir(next, 0o755); err != nil {
		return err
	}
	placed := map[fileID]string{}
	made := map[fileID]bool{m.root: true}
	var build func(dirID fileID, path string) error
	build = func(dirID fileID, path string) error {
		ents := m.dirs[dirID]
		names := make([]string, 0, len(ents))
		for name := range ents {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			e, p := ents[name], filepath.Join(path, name)
			perm := os.FileMode(e.mode & 0o777)
			switch e.mode & unix.S_IFMT {
			case unix.S_IFDIR:
				if made[e.id] {
					continue // durable under two names: one is enough
				}
				made[e.id] = true
				if err := os.Mkdir(p, perm); err != nil {
					return err
				}
				if err := build(e.id, p); err != nil {
					return err
				}
			case unix.S_IFREG:
				if first, ok := placed[e.id]; ok {
					if err := os.Link(first, p); err != nil {
						return err
					}
					continue
				}
				if m.stored[e.id] {
					if err := os.Rename(filepath.Join(m.store, e.id.name()), p); err != nil {
						return err
					}
				} else if err := os.WriteFile(p, nil, perm); err != nil {
					return err
				}
				if err := os.Chmod(p, perm); err != nil {
					return err
				}
				placed[e.id] = p
			case unix.S_IFLNK:
				if err := os.Symlink(e.target, p); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := build(m.root, next); err != nil {
		return fmt.Errorf("powerfs: cannot rebuild the durable state: %w", err)
	}
	if err := os.RemoveAll(m.backing); err != nil {
		return err
	}
	if err := os.Rename(next, m.backing); err != nil {
		return err
	}
	return os.RemoveAll(m.store)
}

// readEntries returns a directory's entries as they are.
func readEntries(dir string) (map[string]entry, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := make(map[string]entry, len(des))
	for _, de := range des {
		p := filepath.Join(dir, de.Name())
		id, mode, err := pathID(p)
		if errors.Is(err, os.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		e := entry{id: id, mode: mode}
		if mode&unix.S_IFMT == unix.S_IFLNK {
			if e.target, err = os.Readlink(p); err != nil {
				return nil, err
			}
		}
		out[de.Name()] = e
	}
	return out, nil
}

const statxMask = unix.STATX_INO | unix.STATX_BTIME | unix.STATX_TYPE | unix.STATX_MODE

// pathID identifies the file at p, not following a symbolic link.
func pathID(p string) (fileID, uint32, error) {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, statxMask, &stx); err != nil {
		return fileID{}, 0, err
	}
	return statxID(&stx), uint32(stx.Mode), nil
}

// fdID identifies the open file fd.
func fdID(fd int) (fileID, uint32, error) {
	var stx unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH, statxMask, &stx); err != nil {
		return fileID{}, 0, err
	}
	return statxID(&stx), uint32(stx.Mode), nil
}

func statxID(stx *unix.Statx_t) fileID {
	id := fileID{ino: stx.Ino}
	if stx.Mask&unix.STATX_BTIME != 0 {
		id.btime = stx.Btime.Sec*1e9 + int64(stx.Btime.Nsec)
	}
	return id
}

// copySparse copies the file src to dst, leaving holes where src reads as
// zeros.
func copySparse(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	info, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	buf := make([]byte, copyChunk)
	zero := make([]byte, copyChunk)
	var off int64
	for {
		n, rerr := io.ReadFull(in, buf)
		if n > 0 && !bytes.Equal(buf[:n], zero[:n]) {
			if _, err := out.WriteAt(buf[:n], off); err != nil {
				out.Close()
				return err
			}
		}
		off += int64(n)
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			out.Close()
			return rerr
		}
	}
	if err := out.Truncate(info.Size()); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
