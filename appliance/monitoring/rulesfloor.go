package monitoring

// Rules that every member can apply. A command whose rules changed
// carries the version it was proposed under (rulesKnown, fsm.go), and a
// node that meets a version newer than its build knows stops rather than
// diverge. During a rolling upgrade the newer nodes must therefore propose
// only versions that the older ones know: each node reports what it knows
// with its cluster status (RulesFeatures, as cluster features), and the
// Service proposes the newest version that every member knows
// (SetRulesFloor). The newer rules start once every member runs the newer
// build.

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// RulesFloor returns the newest version of the feature name that every
// member of the cluster knows, at most newest, taking a member that
// reports nothing to know baseline, and whether every member has reported
// (cluster.Node.FeatureFloor).
type RulesFloor func(name string, newest, baseline int) (int, bool)

// rulesWait bounds how long a proposal waits for a member not heard from
// yet (this node just started) before it takes the member to know the
// baseline: a status round is a second.
const rulesWait = 3 * time.Second

// rulesBaseline is what a build that reports no rules versions knows: the
// builds before the versions were reported knew these (rulesKnown at the
// time). It never changes: later versions go in rulesKnown only.
var rulesBaseline = map[CmdType]int{
	CmdSessionAction:       2,
	CmdAudioChunk:          1,
	CmdAcknowledge:         1,
	CmdLogAction:           3,
	CmdCloseAlarm:          1,
	CmdCloseAlarmConfirmed: 1,
	CmdDeviceStatus:        1,
}

// typesBaseline is the last command type that builds which report no
// features know: every type up to it they apply (38, CmdListenRequest, was
// the newest; 36 and 37 were never used). It never changes.
const typesBaseline = CmdListenRequest

// typeFeatureName is the cluster feature that reports that a build knows
// command type t (version 1).
func typeFeatureName(t CmdType) string { return "cmd/" + strconv.Itoa(int(t)) }

// RulesFeatureName is the cluster feature that reports the rules version
// of command type t that a build knows.
func RulesFeatureName(t CmdType) string { return "rules/" + strconv.Itoa(int(t)) }

// RulesFeatures returns what this build knows of each versioned command
// type's rules, as cluster features (cluster.Node.SetFeatures).
func RulesFeatures() map[string]int {
	out := make(map[string]int, len(rulesKnown)+len(handlers))
	for t, v := range rulesKnown {
		out[RulesFeatureName(t)] = v
	}
	for t := range handlers {
		out[typeFeatureName(t)] = 1
	}
	for _, f := range fieldFeatures {
		out[f] = 1
	}
	return out
}

// Fields added to records that existing commands write. A build that does
// not know one drops it when it applies the command, and its copy of the
// record then differs from the others': the Service writes such a field
// only once every member reports that it knows it (fieldAgreed).
const (
	fieldNotifyReports = "field/org.notify.reports" // NotifyPolicy.Reports (monthly.go)
	fieldContactEmail  = "field/contact.email"      // Contact.Email (briefing.go)
)

var fieldFeatures = []string{fieldNotifyReports, fieldContactEmail}

// fieldAgreed returns a refusal naming field when a member of the cluster
// does not know the record field feature yet (an upgrade is under way),
// or nil.
func (s *Service) fieldAgreed(feature, field string) error {
	f := s.rulesFloor.Load()
	if f == nil || floorOf(context.Background(), *f, feature, 1, 0) >= 1 {
		return nil
	}
	return &RuleError{Code: CodeUpgrading, Field: field,
		Msg: "not yet: this is new in this version, and a node of the cluster runs an older one that would drop it; set it once every node is upgraded"}
}

// contactsAgreed refuses contacts with an email until every member knows
// the field.
func (s *Service) contactsAgreed(field string, cs []Contact) error {
	for i, c := range cs {
		if c.Email != "" {
			return s.fieldAgreed(fieldContactEmail, fmt.Sprintf("%s[%d].email", field, i))
		}
	}
	return nil
}

// typeAgreed returns a refusal, for a new command type that a member does
// not know yet (its build is older: an upgrade is under way), or nil. A
// node proposing it would stop that member.
func (s *Service) typeAgreed(ctx context.Context, t CmdType) error {
	f := s.rulesFloor.Load()
	if f == nil || t <= typesBaseline {
		return nil // every build that could be in the cluster knows it
	}
	if floorOf(ctx, *f, typeFeatureName(t), 1, 0) < 1 {
		return &RuleError{Code: CodeUpgrading, Msg: fmt.Sprintf("not yet: %s is new in this version, and a node of the cluster runs an older one; it works once every node is upgraded", t)}
	}
	return nil
}

// SetRulesFloor sets how the Service learns which rules every member
// knows; without it, it proposes the newest this build knows.
func (s *Service) SetRulesFloor(f RulesFloor) { s.rulesFloor.Store(&f) }

// floor asks f for feature name, waiting up to rulesWait (within ctx) for
// a member not heard from yet.
func floorOf(ctx context.Context, f RulesFloor, name string, newest, baseline int) int {
	v, known := f(name, newest, baseline)
	if known || v >= newest {
		return v
	}
	deadline := time.NewTimer(rulesWait)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return v
		case <-deadline.C:
			return v
		case <-tick.C:
			if v, known = f(name, newest, baseline); known || v >= newest {
				return v
			}
		}
	}
}

// agreedRules returns cmd, an encoded command, under the newest rules that
// every member knows: unchanged when that is the version it asks for, else
// with its rules lowered (older rules, which every member applies alike).
func (s *Service) agreedRules(ctx context.Context, t CmdType, cmd []byte) []byte {
	newest, versioned := rulesKnown[t]
	f := s.rulesFloor.Load()
	if !versioned || f == nil {
		return cmd
	}
	asked, _, _ := rulesTooNew(t, cmd[1:])
	if asked == 0 {
		return cmd
	}
	floor := floorOf(ctx, *f, RulesFeatureName(t), newest, rulesBaseline[t])
	if asked <= floor {
		return cmd
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(cmd[1:], &body); err != nil {
		return cmd // the handler refuses it as malformed
	}
	if floor <= 0 {
		delete(body, "rules")
	} else {
		body["rules"] = json.RawMessage(strconv.Itoa(floor))
	}
	s.logger.Debug("a member knows older rules: proposing under them", "command", t.String(), "rules", floor, "newest", asked)
	return encode(t, body)
}
