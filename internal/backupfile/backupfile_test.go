package backupfile

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	// A cheap key derivation keeps the many cases fast; a reader takes
	// the parameters from the header, so the code paths are the same.
	kdfTime, kdfMemory = 1, 1024
	os.Exit(m.Run())
}

// seal encrypts plain under key as a backup file.
func seal(t *testing.T, key, plain []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := NewWriter(&out, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func open(file, key []byte) ([]byte, error) {
	r, err := NewReader(bytes.NewReader(file), key)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

func TestBackupFile_RoundTripAndRefusals(t *testing.T) {
	key := []byte("correct horse battery staple")
	plain := make([]byte, 3*ChunkSize+123)
	rand.Read(plain)
	file := seal(t, key, plain)

	got, err := open(file, key)
	if err != nil {
		t.Fatalf("reading the backup back: %v", err)
	}
	if !bytes.Equal(got, plain) {
		t.Fatal("the plaintext read back differs from what was written")
	}
	if bytes.Contains(file, plain[:64]) {
		t.Fatal("the file holds the plaintext in clear")
	}

	flip := func(at int) []byte {
		b := bytes.Clone(file)
		b[at] ^= 1
		return b
	}
	cases := []struct {
		name string
		file []byte
		key  []byte
		want error
	}{
		{"wrong key", file, []byte("another passphrase entirely"), ErrWrongKey},
		{"not a backup", []byte("PK\x03\x04 a zip file, not a backup at all, long enough for a header ........................"), key, ErrNotBackup},
		{"header cut short", file[:40], key, ErrTruncated},
		{"truncated mid-chunk", file[:headerLen+4+ChunkSize/2], key, ErrTruncated},
		{"truncated at a chunk boundary", file[:headerLen+2*(4+ChunkSize+chunkOverhead)], key, ErrTruncated},
		{"last chunk dropped", file[:len(file)-(4+123+chunkOverhead)], key, ErrTruncated},
		{"a flipped bit in a chunk", flip(headerLen + 4 + ChunkSize + 100), key, ErrCorrupt},
		{"a flipped bit in the salt", flip(30), key, ErrWrongKey},
		{"a flipped bit in the nonce prefix", flip(40), key, ErrCorrupt},
		{"bytes after the end", append(bytes.Clone(file), 0), key, ErrCorrupt},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := open(tc.file, tc.key)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got error %v, want %v", err, tc.want)
			}
		})
	}
}

func TestBackupFile_EmptyAndExactChunks(t *testing.T) {
	key := []byte("0123456789abcdef")
	for _, n := range []int{0, 1, ChunkSize, 2 * ChunkSize} {
		plain := bytes.Repeat([]byte{7}, n)
		got, err := open(seal(t, key, plain), key)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%d bytes: got %d bytes, error %v", n, len(got), err)
		}
	}
}

func TestBackupFile_Meta(t *testing.T) {
	m := Meta{Format: 1, AppliedIndex: 42, StateHash: "ab", Created: time.Unix(1700000000, 0).UTC(), NodeID: "n1", Source: "api"}
	var b bytes.Buffer
	if err := WriteMeta(&b, m); err != nil {
		t.Fatal(err)
	}
	b.WriteString("snapshot")
	br := bufio.NewReader(&b)
	got, err := ReadMeta(br)
	if err != nil || got != m {
		t.Fatalf("got %+v, %v; want %+v", got, err, m)
	}
	if rest, _ := io.ReadAll(br); string(rest) != "snapshot" {
		t.Fatalf("the stream after the description is %q", rest)
	}
}

func TestReadKeyFile(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("secret\n"), 0o600)
	if _, err := ReadKeyFile(short); err == nil {
		t.Fatal("a 6-byte key was accepted")
	}
	good := filepath.Join(dir, "good")
	os.WriteFile(good, []byte("a long enough passphrase\n"), 0o600)
	k, err := ReadKeyFile(good)
	if err != nil || string(k) != "a long enough passphrase" {
		t.Fatalf("got %q, %v", k, err)
	}
	if _, err := ReadKeyFile(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("a missing key file was accepted")
	}
}
