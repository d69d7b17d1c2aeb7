package powerfs

// The FUSE side: go-fuse's loopback, with every operation that changes a
// file's data or size reported to the model, and fsync and fsyncdir made
// durability points of the model instead of syncs of the backing files.

import (
	"context"
	"path/filepath"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// node is a file or directory of the mount.
type node struct {
	*fs.LoopbackNode
	m *model
}

var (
	_ fs.NodeWrapChilder    = (*node)(nil)
	_ fs.NodeOpener         = (*node)(nil)
	_ fs.NodeCreater        = (*node)(nil)
	_ fs.NodeOpendirHandler = (*node)(nil)
	_ fs.NodeFsyncer        = (*node)(nil)
	_ fs.NodeSetattrer      = (*node)(nil)
	_ fs.NodeCopyFileRanger = (*node)(nil)
	_ fs.NodeTmpfiler       = (*node)(nil)
)

// WrapChild makes every node the loopback creates a node of ours.
func (n *node) WrapChild(_ context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	return &node{LoopbackNode: ops.(*fs.LoopbackNode), m: n.m}
}

// backingPath is the node's path in the backing directory.
func (n *node) backingPath() string {
	return filepath.Join(n.RootData.Path, n.Path(n.RootData.RootNode.EmbeddedInode()))
}

// Open opens the backing file and watches what is written through it.
func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, fuseFlags, errno := n.LoopbackNode.Open(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return n.wrap(fh), fuseFlags, 0
}

// Create creates the backing file and watches what is written through it.
func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	ch, fh, fuseFlags, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	return ch, n.wrap(fh), fuseFlags, 0
}

// Tmpfile is refused: an O_TMPFILE file would escape the model.
func (n *node) Tmpfile(context.Context, uint32, uint32, *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EOPNOTSUPP
}

// CopyFileRange is refused, so that the kernel copies through read and
// write, which the model sees.
func (n *node) CopyFileRange(context.Context, fs.FileHandle, uint64, *fs.Inode, fs.FileHandle, uint64, uint64, uint64) (uint32, syscall.Errno) {
	return 0, syscall.EOPNOTSUPP
}

// wrap returns a handle of ours around the loopback's.
func (n *node) wrap(fh fs.FileHandle) fs.FileHandle {
	lf := fh.(*fs.LoopbackFile)
	fd, _ := lf.PassthroughFd()
	return &file{lf: lf, fd: fd, n: n}
}

// Setattr tells the model of a truncation.
func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if errno := n.LoopbackNode.Setattr(ctx, f, in, out); errno != 0 {
		return errno
	}
	if sz, ok := in.GetSize(); ok {
		id, _, err := n.fileID(f)
		if err != nil {
			return fs.ToErrno(err)
		}
		n.m.changed(id, int64(sz), -1)
	}
	return 0
}

// fileID identifies the node's backing file, through its handle if it has
// one (a file unlinked but open has no path).
func (n *node) fileID(f fs.FileHandle) (fileID, uint32, error) {
	if pf, ok := f.(*file); ok {
		return fdID(pf.fd)
	}
	return pathID(n.backingPath())
}

// Fsync makes the file's data durable (FUSE sends fsync, fdatasync and
// msync with MS_SYNC here), and a directory's entries when the directory
// has no handle of ours.
func (n *node) Fsync(_ context.Context, f fs.FileHandle, _ uint32) syscall.Errno {
	if pf, ok := f.(*file); ok {
		return fs.ToErrno(n.m.syncFile(pf.fd, n.backingPath()))
	}
	if n.IsDir() {
		return fs.ToErrno(n.m.syncDir(n.backingPath()))
	}
	fd, err := syscall.Open(n.backingPath(), syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fs.ToErrno(err)
	}
	defer syscall.Close(fd)
	return fs.ToErrno(n.m.syncFile(fd, n.backingPath()))
}

// OpendirHandle opens the loopback's directory stream, with fsyncdir made
// a durability point.
func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, fuseFlags, errno := n.LoopbackNode.OpendirHandle(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return &dir{ds: fh, n: n}, fuseFlags, 0
}

// file is an open file: the loopback's handle, with writes, truncations
// and allocations reported to the model and fsync made a durability point.
type file struct {
	lf *fs.LoopbackFile
	fd int // the backing file's descriptor, owned by lf
	n  *node
}

var (
	_ fs.FileReader    = (*file)(nil)
	_ fs.FileWriter    = (*file)(nil)
	_ fs.FileFlusher   = (*file)(nil)
	_ fs.FileFsyncer   = (*file)(nil)
	_ fs.FileReleaser  = (*file)(nil)
	_ fs.FileGetattrer = (*file)(nil)
	_ fs.FileSetattrer = (*file)(nil)
	_ fs.FileStatxer   = (*file)(nil)
	_ fs.FileLseeker   = (*file)(nil)
	_ fs.FileAllocater = (*file)(nil)
	_ fs.FileGetlker   = (*file)(nil)
	_ fs.FileSetlker   = (*file)(nil)
	_ fs.FileSetlkwer  = (*file)(nil)
)

func (f *file) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	return f.lf.Read(ctx, dest, off)
}

// Write writes to the backing file, then tells the model: whatever a
// later sync copies has reached the backing file.
func (f *file) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	n, errno := f.lf.Write(ctx, data, off)
	if n > 0 {
		if id, _, err := fdID(f.fd); err == nil {
			f.n.m.changed(id, off, off+int64(n))
		} else if errno == 0 {
			errno = fs.ToErrno(err)
		}
	}
	return n, errno
}

// Flush is a close: not a sync.
func (f *file) Flush(ctx context.Context) syscall.Errno { return f.lf.Flush(ctx) }

// Fsync makes the file durable.
func (f *file) Fsync(_ context.Context, _ uint32) syscall.Errno {
	return fs.ToErrno(f.n.m.syncFile(f.fd, f.n.backingPath()))
}

func (f *file) Release(ctx context.Context) syscall.Errno { return f.lf.Release(ctx) }

func (f *file) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	return f.lf.Getattr(ctx, out)
}

// Setattr sets the attributes; node.Setattr, which calls it, tells the
// model of a truncation.
func (f *file) Setattr(ctx context.Context, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return f.lf.Setattr(ctx, in, out)
}

func (f *file) Statx(ctx context.Context, flags, mask uint32, out *fuse.StatxOut) syscall.Errno {
	return f.lf.Statx(ctx, flags, mask, out)
}

func (f *file) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	return f.lf.Lseek(ctx, off, whence)
}

// Allocate allocates (or punches, or zeroes) the range, then tells the
// model that the range and the size may have changed.
func (f *file) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	if errno := f.lf.Allocate(ctx, off, size, mode); errno != 0 {
		return errno
	}
	id, _, err := fdID(f.fd)
	if err != nil {
		return fs.ToErrno(err)
	}
	f.n.m.changed(id, int64(off), int64(off+size))
	return 0
}

func (f *file) Getlk(ctx context.Context, owner uint64, lk *fuse.FileLock, flags uint32, out *fuse.FileLock) syscall.Errno {
	return f.lf.Getlk(ctx, owner, lk, flags, out)
}

func (f *file) Setlk(ctx context.Context, owner uint64, lk *fuse.FileLock, flags uint32) syscall.Errno {
	return f.lf.Setlk(ctx, owner, lk, flags)
}

func (f *file) Setlkw(ctx context.Context, owner uint64, lk *fuse.FileLock, flags uint32) syscall.Errno {
	return f.lf.Setlkw(ctx, owner, lk, flags)
}

// dir is an open directory: the loopback's stream, with fsyncdir made a
// durability point of the directory's entries.
type dir struct {
	ds fs.FileHandle
	n  *node
}

var (
	_ fs.FileReaddirenter = (*dir)(nil)
	_ fs.FileReleasedirer = (*dir)(nil)
	_ fs.FileSeekdirer    = (*dir)(nil)
	_ fs.FileFsyncdirer   = (*dir)(nil)
)

func (d *dir) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	return d.ds.(fs.FileReaddirenter).Readdirent(ctx)
}

func (d *dir) Releasedir(ctx context.Context, flags uint32) {
	if r, ok := d.ds.(fs.FileReleasedirer); ok {
		r.Releasedir(ctx, flags)
	}
}

func (d *dir) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if s, ok := d.ds.(fs.FileSeekdirer); ok {
		return s.Seekdir(ctx, off)
	}
	return syscall.ENOTSUP
}

// Fsyncdir makes the directory's entries durable.
func (d *dir) Fsyncdir(context.Context, uint32) syscall.Errno {
	return fs.ToErrno(d.n.m.syncDir(d.n.backingPath()))
}
