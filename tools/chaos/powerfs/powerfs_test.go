package powerfs

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// mustMount mounts a powerfs over a new backing directory, or skips the
// test where FUSE cannot be mounted (not root, no /dev/fuse).
func mustMount(t *testing.T, strict bool) *FS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("powerfs mounts with mount(2): run as root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
	dir := t.TempDir()
	f, err := Mount(Options{Mountpoint: filepath.Join(dir, "mnt"), Backing: filepath.Join(dir, "backing"),
		Store: filepath.Join(dir, "store"), StrictNames: strict})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Unmount(); err != nil {
			t.Error(err)
		}
	})
	return f
}

// powerCycle cuts the power and mounts again on what was durable.
func powerCycle(t *testing.T, f *FS) *FS {
	t.Helper()
	if _, err := f.PowerOff(); err != nil {
		t.Fatal(err)
	}
	g, err := Mount(f.Options())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.Unmount(); err != nil {
			t.Error(err)
		}
	})
	return g
}

// mustWrite writes data to path through the mount, syncing it if sync.
func mustWrite(t *testing.T, path string, data []byte, sync bool) {
	t.Helper()
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.Write(data); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := fh.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := fh.Close(); err != nil {
		t.Fatal(err)
	}
}

func mustSyncDir(t *testing.T, dir string) {
	t.Helper()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
}

// content returns the file's content, or nil and false if it is missing.
func content(t *testing.T, path string) ([]byte, bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return b, true
}

func TestPowerFS_UnsyncedWriteIsLost(t *testing.T) {
	f := mustMount(t, false)
	mnt := f.Options().Mountpoint
	mustWrite(t, filepath.Join(mnt, "named"), []byte("old"), true)
	mustSyncDir(t, mnt)
	mustWrite(t, filepath.Join(mnt, "named"), []byte("new, never synced"), false)
	mustWrite(t, filepath.Join(mnt, "new"), []byte("never synced"), false)
	if b, _ := content(t, filepath.Join(mnt, "named")); string(b) != "new, never synced" {
		t.Fatalf("before the cut the mount reads %q", b)
	}

	loss, err := f.PowerOff()
	if err != nil {
		t.Fatal(err)
	}
	// The write to "named" follows its truncation (O_TRUNC), which is not
	// counted in bytes.
	if want := int64(len("never synced")); loss.Files != 2 || loss.Bytes != want {
		t.Errorf("PowerOff lost %+v, want 2 files and %d bytes", loss, want)
	}
	g, err := Mount(f.Options())
	if err != nil {
		t.Fatal(err)
	}
	defer g.Unmount()
	if b, ok := content(t, filepath.Join(mnt, "named")); !ok || string(b) != "old" {
		t.Errorf("a synced file overwritten without a sync reads %q (present %v), want the synced \"old\"", b, ok)
	}
	if b, ok := content(t, filepath.Join(mnt, "new")); ok {
		t.Errorf("a new file never synced, in a directory never synced, survived: %q", b)
	}
}

func TestPowerFS_SyncedWriteIsKept(t *testing.T) {
	for _, strict := range []bool{false, true} {
		t.Run(map[bool]string{false: "ext4", true: "strict"}[strict], func(t *testing.T) {
			f := mustMount(t, strict)
			mnt := f.Options().Mountpoint
			if err := os.MkdirAll(filepath.Join(mnt, "a", "b"), 0o755); err != nil {
				t.Fatal(err)
			}
			mustWrite(t, filepath.Join(mnt, "a", "b", "synced"), []byte("kept"), true)
			f = powerCycle(t, f)
			b, ok := content(t, filepath.Join(mnt, "a", "b", "synced"))
			switch {
			case strict && ok:
				t.Errorf("strict: a new file synced, its directories never synced, survived: %q", b)
			case !strict && (!ok || string(b) != "kept"):
				t.Errorf("a new file synced reads %q (present %v), want \"kept\" with its new directories", b, ok)
			}

			// Syncing the directories too keeps it in either mode.
			if err := os.MkdirAll(filepath.Join(mnt, "a", "b"), 0o755); err != nil {
				t.Fatal(err)
			}
			mustWrite(t, filepath.Join(mnt, "a", "b", "synced"), []byte("kept"), true)
			mustSyncDir(t, filepath.Join(mnt, "a", "b"))
			mustSyncDir(t, filepath.Join(mnt, "a"))
			mustSyncDir(t, mnt)
			f = powerCycle(t, f)
			if b, ok := content(t, filepath.Join(mnt, "a", "b", "synced")); !ok || string(b) != "kept" {
				t.Errorf("with its directories synced it reads %q (present %v)", b, ok)
			}
			_ = f
		})
	}
}

func TestPowerFS_RenameNeedsDirectorySync(t *testing.T) {
	f := mustMount(t, false)
	mnt := f.Options().Mountpoint
	target, tmp := filepath.Join(mnt, "config"), filepath.Join(mnt, "config.tmp")
	mustWrite(t, target, []byte("v1"), true)
	mustSyncDir(t, mnt)

	// Write the new version aside, sync it, rename it over: without a sync
	// of the directory the rename is not durable.
	mustWrite(t, tmp, []byte("v2"), true)
	if err := os.Rename(tmp, target); err != nil {
		t.Fatal(err)
	}
	f = powerCycle(t, f)
	if b, _ := content(t, target); string(b) != "v1" {
		t.Errorf("after a rename not made durable, %s reads %q, want \"v1\"", target, b)
	}
	if b, _ := content(t, tmp); string(b) != "v2" {
		t.Errorf("the synced new file %s reads %q, want \"v2\" under its durable name", tmp, b)
	}

	mustWrite(t, tmp, []byte("v3"), true)
	if err := os.Rename(tmp, target); err != nil {
		t.Fatal(err)
	}
	mustSyncDir(t, mnt)
	f = powerCycle(t, f)
	if b, _ := content(t, target); string(b) != "v3" {
		t.Errorf("after a durable rename, %s reads %q, want \"v3\"", target, b)
	}
	if _, ok := content(t, tmp); ok {
		t.Errorf("%s is still there after a durable rename over the target", tmp)
	}

	// An unlink is a directory change too.
	if err := os.Remove(target); err != nil {
		t.Fatal(err)
	}
	f = powerCycle(t, f)
	if b, _ := content(t, target); string(b) != "v3" {
		t.Errorf("after an unlink not made durable, %s reads %q, want it back", target, b)
	}
	_ = f
}

// mmapChildEnv names the file the test binary, started again as a child,
// writes through a shared mapping. A Go process must not touch its own
// FUSE mount through a mapping: a page fault is not a system call, so the
// garbage collector's stop-the-world waits for it while the goroutines
// that would serve it are stopped.
const mmapChildEnv = "POWERFS_TEST_MMAP_CHILD"

// mmapSize is the size of the mapped file.
const mmapSize = 1 << 20

func TestPowerFS_MmapWriteNeedsMsync(t *testing.T) {
	if path := os.Getenv(mmapChildEnv); path != "" {
		if err := mmapWrites(path); err != nil {
			t.Fatal(err)
		}
		return
	}
	f := mustMount(t, false)
	mnt := f.Options().Mountpoint
	path := filepath.Join(mnt, "00001.mem")
	cmd := exec.Command(os.Args[0], "-test.run=^TestPowerFS_MmapWriteNeedsMsync$")
	cmd.Env = append(os.Environ(), mmapChildEnv+"="+path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the child that writes through the mapping: %v\n%s", err, out)
	}
	f = powerCycle(t, f)
	b, ok := content(t, path)
	if !ok || len(b) != mmapSize {
		t.Fatalf("the file is %d bytes (present %v), want %d", len(b), ok, mmapSize)
	}
	if got := string(b[4096 : 4096+20]); got != "synced through msync" {
		t.Errorf("the msynced write reads %q", got)
	}
	if !bytes.Equal(b[8192:8192+22], make([]byte, 22)) || !bytes.Equal(b[mmapSize-100:], make([]byte, 100)) {
		t.Errorf("writes through the mapping that were never synced survived")
	}
	_ = f
}

// mmapWrites makes the file as Badger makes a memtable's file (create,
// size with ftruncate, sync the file and its directory), writes through a
// shared mapping, msyncs, writes more, and exits without syncing again:
// the later writes stay with the kernel, or reach the file system unsynced.
func mmapWrites(path string) error {
	fh, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if err := fh.Truncate(mmapSize); err != nil {
		return err
	}
	if err := fh.Sync(); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		return err
	}
	d.Close()
	data, err := unix.Mmap(int(fh.Fd()), 0, mmapSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return err
	}
	copy(data[4096:], "synced through msync")
	if err := unix.Msync(data, unix.MS_SYNC); err != nil {
		return err
	}
	copy(data[8192:], "only in the page cache")
	copy(data[mmapSize-100:], "at the end, never synced")
	return nil
}

func TestPowerFS_TruncateNeedsSync(t *testing.T) {
	f := mustMount(t, true)
	mnt := f.Options().Mountpoint
	path := filepath.Join(mnt, "log")
	mustWrite(t, path, []byte("0123456789"), true)
	mustSyncDir(t, mnt)
	if err := os.Truncate(path, 4); err != nil {
		t.Fatal(err)
	}
	f = powerCycle(t, f)
	if b, _ := content(t, path); string(b) != "0123456789" {
		t.Errorf("a truncation never synced: the file reads %q", b)
	}
	// Shrink then grow, synced: the bytes past the shrink read as zeros.
	if err := os.Truncate(path, 4); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 8); err != nil {
		t.Fatal(err)
	}
	fh, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := fh.Sync(); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	f = powerCycle(t, f)
	if b, _ := content(t, path); string(b) != "0123\x00\x00\x00\x00" {
		t.Errorf("a synced shrink and grow: the file reads %q", b)
	}
	_ = f
}

func TestPowerFS_HardLinksAndSymlinks(t *testing.T) {
	f := mustMount(t, false)
	mnt := f.Options().Mountpoint
	mustWrite(t, filepath.Join(mnt, "a"), []byte("same"), true)
	if err := os.Link(filepath.Join(mnt, "a"), filepath.Join(mnt, "b")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a", filepath.Join(mnt, "c")); err != nil {
		t.Fatal(err)
	}
	mustSyncDir(t, mnt)
	f = powerCycle(t, f)
	var sa, sb syscall.Stat_t
	if err := syscall.Stat(filepath.Join(mnt, "a"), &sa); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(filepath.Join(mnt, "b"), &sb); err != nil {
		t.Fatal(err)
	}
	if sa.Ino != sb.Ino {
		t.Error("a and b are no longer one file")
	}
	if target, err := os.Readlink(filepath.Join(mnt, "c")); err != nil || target != "a" {
		t.Errorf("the symbolic link reads %q, %v", target, err)
	}
	ents, err := os.ReadDir(mnt)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"a", "b", "c"}) {
		t.Errorf("the root holds %v", names)
	}
	_ = f
}

func TestAddSpan(t *testing.T) {
	var ss []span
	for _, s := range []span{{10, 20}, {30, 40}, {0, 5}, {18, 31}, {50, 60}, {5, 6}} {
		ss = addSpan(ss, s)
	}
	want := []span{{0, 6}, {10, 40}, {50, 60}}
	if !slices.Equal(ss, want) {
		t.Errorf("spans = %v, want %v", ss, want)
	}
}
