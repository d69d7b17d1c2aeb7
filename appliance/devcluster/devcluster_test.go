package devcluster

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilarc/vigil/provisioning"
)

// errUsage is what testEnv's UsageError and ParseArgs return.
var errUsage = errors.New("usage error")

// testEnv is the command line's side of vigil devcluster. Its flags
// parser takes no positional arguments between flags.
func testEnv(stdout, stderr io.Writer) Env {
	return Env{
		Stdout: stdout, Stderr: stderr,
		ParseArgs: func(fs *flag.FlagSet, args []string) ([]string, error) {
			if err := fs.Parse(args); err != nil {
				if errors.Is(err, flag.ErrHelp) {
					return nil, err
				}
				return nil, errUsage
			}
			return fs.Args(), nil
		},
		UsageError: func(fs *flag.FlagSet, format string, a ...any) error {
			fmt.Fprintf(fs.Output(), "vigil %s: %s\n\n", fs.Name(), fmt.Sprintf(format, a...))
			fs.Usage()
			return errUsage
		},
		CheckLogLevel: func(level string) error {
			if level != "info" && level != "warn" {
				return errors.New("must be info or warn")
			}
			return nil
		},
		NewLogger:       func(w io.Writer, _ string) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) },
		DefaultLogLevel: "info",
		EnvPrefix:       "VIGIL_",
	}
}

// Mistakes on the command line are refused before any node starts.
func TestCommand_RefusesBadFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"an argument", []string{"extra"}, `unexpected argument "extra"`},
		{"a bad log level", []string{"--log-level", "loud"}, "--log-level: must be info or warn"},
		{"cluster port 0", []string{"--cluster-port", "0"}, "--cluster-port 0 is not a port"},
		{"HTTP port too high", []string{"--http-port", "65534"}, "--http-port 65534 is not a port"},
		{"overlapping ports", []string{"--cluster-port", "9000", "--http-port", "9002"}, "ranges overlap"},
		{"MQTT over HTTP", []string{"--mqtt-port", "8082"}, "--mqtt-port 8082 and --http-port 8081 ranges overlap"},
		{"no demo devices", []string{"--demo-devices", "0"}, "--demo-devices 0 is not from 1 to 500"},
		{"negative alarm rate", []string{"--demo-alarm-rate", "-1"}, "--demo-alarm-rate -1 must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := Command(context.Background(), append([]string{"--dir", t.TempDir()}, tc.args...), testEnv(&out, &errOut))
			if !errors.Is(err, errUsage) || !strings.Contains(errOut.String(), tc.want) || out.Len() != 0 {
				t.Errorf("error %v, stdout %q, stderr %q; want a usage error saying %q", err, out.String(), errOut.String(), tc.want)
			}
		})
	}
}

// The nodes do not inherit the VIGIL_ variables, which would override
// their flags.
func TestDevEnv_DropsVigilVariables(t *testing.T) {
	got := devEnv([]string{"HOME=/home/x", "VIGIL_DATA_DIR=/elsewhere", "PATH=/bin", "VIGIL_API_TOKEN=t"}, "VIGIL_")
	if strings.Join(got, " ") != "HOME=/home/x PATH=/bin" {
		t.Errorf("devEnv = %q", got)
	}
}

// The nodes' output is written whole lines at a time, each with its
// prefix, however the writes split them.
func TestPrefixWriter_WholeLines(t *testing.T) {
	var out bytes.Buffer
	var mu sync.Mutex
	w := &prefixWriter{mu: &mu, w: &out, prefix: "node1 | "}
	for _, s := range []string{"first ", "line\nsecond line\nthi", "rd", " line\n"} {
		if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	w.Write([]byte("unfinished"))
	want := "node1 | first line\nnode1 | second line\nnode1 | third line\n"
	if out.String() != want {
		t.Errorf("wrote %q, want %q", out.String(), want)
	}
}

// The first run gives the three nodes their trust from one new CA; a later
// run keeps it; a mix of nodes with and without trust, or of different
// CAs, is refused with what to do.
func TestEnsureTrust_FirstRunOnly(t *testing.T) {
	newNodes := func(t *testing.T) ([]*devNode, string) {
		dir := t.TempDir()
		var nodes []*devNode
		for i := range devNodes {
			name := fmt.Sprintf("node%d", i+1)
			nodes = append(nodes, &devNode{name: name, dataDir: filepath.Join(dir, name)})
		}
		return nodes, dir
	}
	t.Run("first and second run", func(t *testing.T) {
		nodes, dir := newNodes(t)
		if made, err := ensureTrust(nodes, dir); !made || err != nil {
			t.Fatalf("first run: made %v, %v", made, err)
		}
		var ca string
		for _, n := range nodes {
			tr, err := provisioning.LoadTrust(n.dataDir)
			if err != nil || tr.NodeID() != n.name || (ca != "" && tr.CA.Fingerprint() != ca) {
				t.Fatalf("%s: %v", n.name, err)
			}
			ca = tr.CA.Fingerprint()
		}
		if made, err := ensureTrust(nodes, dir); made || err != nil {
			t.Fatalf("second run: made %v, %v", made, err)
		}
	})
	for _, tc := range []struct {
		name string
		mess func(t *testing.T, nodes []*devNode)
		want string
	}{
		{"one without trust", func(t *testing.T, nodes []*devNode) {
			os.RemoveAll(filepath.Join(nodes[1].dataDir, provisioning.TrustDir))
		}, "node1, node3 hold(s) cluster trust in <data dir>/tls but node2 not"},
		{"another cluster's CA", func(t *testing.T, nodes []*devNode) {
			os.RemoveAll(nodes[2].dataDir)
			if _, err := provisioning.ProvisionNodes("other", map[string]string{"node3": nodes[2].dataDir}, devNames, time.Now()); err != nil {
				t.Fatal(err)
			}
		}, "node1 and node3 hold the trust of different cluster CAs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nodes, dir := newNodes(t)
			if _, err := ensureTrust(nodes, dir); err != nil {
				t.Fatal(err)
			}
			tc.mess(t, nodes)
			_, err := ensureTrust(nodes, dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "delete "+dir) {
				t.Errorf("error %v, want one saying %q and to delete %s", err, tc.want, dir)
			}
		})
	}
}
