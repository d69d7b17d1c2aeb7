package chaos

import (
	_ "embed"
	"fmt"
	"strconv"
	"strings"
)

//go:embed regressions.txt
var regressionsFile string

// Regression is a seed that once found a bug.
type Regression struct {
	Seed   uint64
	Faults int
	Kinds  []Kind // the kinds its schedule is drawn from
	Note   string // what it found
}

// Regressions returns the seeds of regressions.txt.
func Regressions() ([]Regression, error) { return parseRegressions(regressionsFile) }

// parseRegressions parses lines of "seed faults [kinds] # note", kinds
// being a comma-separated list or "all" (Kinds), FirstKinds when left out;
// blank lines and lines starting with # are skipped.
func parseRegressions(text string) ([]Regression, error) {
	var out []Regression
	for i, line := range strings.Split(text, "\n") {
		body, note, _ := strings.Cut(line, "#")
		f := strings.Fields(body)
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 && len(f) != 3 {
			return nil, fmt.Errorf("regressions.txt line %d: want a seed, a number of faults and maybe kinds, got %q", i+1, strings.TrimSpace(body))
		}
		kinds := FirstKinds
		if len(f) == 3 {
			var err error
			if kinds, err = ParseKinds(f[2]); f[2] == "all" {
				kinds = Kinds
			} else if err != nil {
				return nil, fmt.Errorf("regressions.txt line %d: %w", i+1, err)
			}
		}
		seed, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("regressions.txt line %d: seed %q: %w", i+1, f[0], err)
		}
		n, err := strconv.Atoi(f[1])
		if err != nil || n < 1 {
			return nil, fmt.Errorf("regressions.txt line %d: faults %q is not a positive number", i+1, f[1])
		}
		out = append(out, Regression{Seed: seed, Faults: n, Kinds: kinds, Note: strings.TrimSpace(note)})
	}
	return out, nil
}
