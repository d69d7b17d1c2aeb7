package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runTimeout bounds one run of the tests below, plus perFault for each
// fault.
const (
	runTimeout = 10 * time.Minute
	perFault   = 30 * time.Second
)

// mustChaos skips the test unless VIGIL_CHAOS=1 and the machine can run the
// harness (root, ip, nft), and returns a vigil built for it.
func mustChaos(t *testing.T) string {
	t.Helper()
	if os.Getenv("VIGIL_CHAOS") != "1" {
		t.Skip("fault injection: set VIGIL_CHAOS=1 (as root, with iproute2 and nftables) to run it")
	}
	if err := CheckTools(); err != nil {
		t.Skip(err)
	}
	bin := filepath.Join(t.TempDir(), "vigil")
	out, err := exec.Command("go", "build", "-buildvcs=false", "-o", bin, "github.com/vigilarc/vigil").CombinedOutput()
	if err != nil {
		t.Fatalf("go build vigil: %v\n%s", err, out)
	}
	return bin
}

// runChaos runs one schedule and fails the test if it finds anything.
func runChaos(t *testing.T, bin string, seed uint64, faults int, kinds []Kind) {
	t.Helper()
	var sb strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout+time.Duration(faults)*perFault)
	defer cancel()
	res, err := Run(ctx, Options{Vigil: bin, Seed: seed, Faults: faults, Kinds: kinds, Dir: filepath.Join(t.TempDir(), "run"), Out: &sb})
	if res != nil {
		res.WriteReport(&sb)
	}
	t.Log(sb.String())
	switch {
	case err != nil:
		t.Fatalf("seed %d: %v", seed, err)
	case !res.OK():
		t.Fatalf("seed %d: %s", seed, res.Line())
	}
}

// TestChaos_Short runs a tiny schedule, one fault of each kind but one.
func TestChaos_Short(t *testing.T) {
	bin := mustChaos(t)
	runChaos(t, bin, 1, 3, nil)
}

// TestChaos_Regressions runs again every seed that once found a bug.
func TestChaos_Regressions(t *testing.T) {
	regs, err := Regressions()
	if err != nil {
		t.Fatal(err)
	}
	if len(regs) == 0 {
		t.Skip("regressions.txt lists no seed")
	}
	bin := mustChaos(t)
	for _, r := range regs {
		t.Run(fmt.Sprintf("seed_%d", r.Seed), func(t *testing.T) {
			t.Logf("seed %d once found: %s", r.Seed, r.Note)
			runChaos(t, bin, r.Seed, r.Faults, r.Kinds)
		})
	}
}
