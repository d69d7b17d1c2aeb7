package chaos

// The fault schedule, drawn from the seed. The same seed gives the same
// faults, targets, holds and pauses, so any run can be replayed; the
// timing of the cluster itself is of course not replayed.

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Kind is a kind of fault.
type Kind string

// The kinds of fault. Each is healed before the next is injected: Vigil
// promises to survive any single failure, not two at once.
const (
	// KindKill SIGKILLs a node (the leader or a follower), then starts it
	// again on its data.
	KindKill Kind = "kill"
	// KindPause SIGSTOPs a node (the leader or a follower), then SIGCONTs
	// it: a node that hangs, then comes back with stale beliefs.
	KindPause Kind = "pause"
	// KindIsolateLeader cuts the leader's link: nobody reaches it, devices
	// included. Then the link comes back.
	KindIsolateLeader Kind = "isolate-leader"
	// KindSplit cuts one node (any, the leader one time in three) from the
	// two others, 1 | 2, while devices still reach all three.
	KindSplit Kind = "split"
	// KindWipe SIGKILLs a node, removes it from the membership through a
	// live node, wipes its data directory and starts a new member with a
	// new ID in its place, the way a failed appliance is swapped.
	KindWipe Kind = "wipe"
	// KindPowercut cuts a node's power (the leader or a follower): SIGKILL,
	// then everything its disk (powerfs) held that was not synced is lost.
	// It starts again on what was synced.
	KindPowercut Kind = "powercut"
	// KindPowercutAll cuts the power of all three nodes at once, the site's
	// power failing: no quorum until they are back, but nothing they had
	// acknowledged may be lost.
	KindPowercutAll Kind = "powercut-all"
)

// Kinds is every kind of fault, in the order reports list them.
var Kinds = []Kind{KindKill, KindPause, KindIsolateLeader, KindSplit, KindWipe, KindPowercut, KindPowercutAll}

// FirstKinds are the kinds there were before the power cuts. A seed
// recorded then replays its schedule only when drawn from these: Plan
// shuffles the kinds it is given.
var FirstKinds = []Kind{KindKill, KindPause, KindIsolateLeader, KindSplit, KindWipe}

// Role says which node a fault hits, resolved when it is injected.
type Role string

// Roles.
const (
	RoleLeader   Role = "leader"
	RoleFollower Role = "follower"
	RoleAny      Role = "any"
	RoleAll      Role = "all" // every node at once
)

// Ranges of a schedule's times.
const (
	minHold  = 2 * time.Second
	maxHold  = 8 * time.Second
	minQuiet = 2 * time.Second
	maxQuiet = 5 * time.Second
)

// Fault is one planned fault.
type Fault struct {
	N    int  // 1-based position in the schedule
	Kind Kind // what happens
	Role Role // to which node
	// Pick chooses among the nodes of the role: a follower, or any node.
	Pick int
	// Hold is how long the fault lasts before it is healed (for a wipe,
	// how long the slot stays empty before its replacement starts).
	Hold time.Duration
	// Quiet is how long the harness waits, once the cluster is whole
	// again, before the next fault.
	Quiet time.Duration
}

func (f Fault) String() string {
	return fmt.Sprintf("%s %s (hold %s)", f.Kind, f.Role, f.Hold.Round(100*time.Millisecond))
}

// Plan returns the schedule of n faults for seed. Each run of len(kinds)
// consecutive faults is a shuffle of kinds, so a schedule of at least that
// many faults exercises every kind, and a long one exercises them evenly.
// An empty kinds means Kinds.
func Plan(seed uint64, n int, kinds []Kind) []Fault {
	if len(kinds) == 0 {
		kinds = Kinds
	}
	rng := rand.New(rand.NewPCG(seed, 0xfa017))
	var out []Fault
	var bag []Kind
	for i := range n {
		if len(bag) == 0 {
			bag = append([]Kind(nil), kinds...)
			rng.Shuffle(len(bag), func(a, b int) { bag[a], bag[b] = bag[b], bag[a] })
		}
		f := Fault{N: i + 1, Kind: bag[0], Pick: rng.IntN(1 << 16),
			Hold:  uniform(rng, minHold, maxHold),
			Quiet: uniform(rng, minQuiet, maxQuiet)}
		bag = bag[1:]
		switch f.Kind {
		case KindIsolateLeader:
			f.Role = RoleLeader
		case KindSplit, KindWipe:
			f.Role = RoleAny
		case KindPowercutAll:
			f.Role = RoleAll
		default:
			f.Role = RoleFollower
			if rng.IntN(2) == 0 {
				f.Role = RoleLeader
			}
		}
		out = append(out, f)
	}
	return out
}

// uniform returns a duration in [lo, hi), to the millisecond.
func uniform(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	return (lo + time.Duration(rng.Int64N(int64(hi-lo)))).Round(time.Millisecond)
}

// ParseKinds parses a comma-separated list of kinds; empty means all.
func ParseKinds(s string) ([]Kind, error) {
	if s == "" {
		return nil, nil
	}
	var out []Kind
	for _, part := range splitComma(s) {
		k := Kind(part)
		ok := false
		for _, known := range Kinds {
			ok = ok || k == known
		}
		if !ok {
			return nil, fmt.Errorf("fault kind %q is not one of %v", part, Kinds)
		}
		out = append(out, k)
	}
	return out, nil
}
