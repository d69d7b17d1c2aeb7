package monitoring

// Police lone-worker URNs (NPCC policy, DOMAIN.md). An accredited service
// holds a URN per police force; quoting it gets an immediate response, and
// it is only for evidence of a pending assault or serious threat. Repeated
// false calls can lose it. From RulesURN on, a police call on the URN route
// is refused unless the alarm is eligible and the organisation holds a URN
// for the force that has not expired; the URN quoted is written on the
// timeline entry. 999 and 101 are always open.

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// URNAlternative is what an operator does when a URN call is refused.
const URNAlternative = "call 999 if life is at risk, otherwise 101"

// URNEligibleType reports whether an alarm of type t is by itself
// evidence of a pending assault or serious threat: the panic button, the
// discreet panic and the Duress PIN. A missed check-in (an overdue or
// missing worker), a device offline, a low battery, a flooding device and
// a test are not; nor is a man-down, a medical emergency for 999.
func URNEligibleType(t AlarmType) bool {
	return t == AlarmRedAlert || t == AlarmDiscreetPanic || t == AlarmDuress
}

// urnIneligibleWhy says why an alarm of type t is not evidence of a threat.
func urnIneligibleWhy(t AlarmType) string {
	switch t {
	case AlarmManDown:
		return "a man-down alarm is a medical emergency, not evidence of a threat: 999 for an ambulance"
	case AlarmMissedCheckIn:
		return "a missed check-in (an overdue or missing worker) is not evidence of a threat"
	case AlarmDeviceOffline:
		return "a device gone offline is not evidence of a threat"
	case AlarmLowBattery, AlarmDeviceFlooding:
		return fmt.Sprintf("a %s alarm is technical, not evidence of a threat", t)
	case AlarmTest:
		return "a test alarm is not evidence of a threat"
	}
	return fmt.Sprintf("a %s alarm is not evidence of a threat", t)
}

// urnEligible reports whether a police call on a URN may be made about
// alarm a, and why (or why not): its own type is eligible, or an open
// alarm of its incident is.
func urnEligible(txn *badger.Txn, a *Alarm) (bool, string, error) {
	if URNEligibleType(a.Type) {
		return true, fmt.Sprintf("a %s alarm is evidence of a threat", a.Type), nil
	}
	var via *Alarm
	if a.IncidentID != "" {
		err := scanPrefix(txn, pIncident+a.IncidentID+"/", false, func(key, _ []byte) (bool, error) {
			id := lastSegment(key)
			if id == a.ID {
				return true, nil
			}
			o, err := getAlarm(txn, id)
			if err != nil {
				return false, err
			}
			if URNEligibleType(o.Type) && o.Status != StatusClosed {
				via = o
				return false, nil
			}
			return true, nil
		})
		if err != nil {
			return false, "", err
		}
	}
	if via != nil {
		return true, fmt.Sprintf("it is in the incident of the open %s alarm %s", via.Type, via.ID), nil
	}
	return false, urnIneligibleWhy(a.Type), nil
}

// sameForce reports whether two force names name the same force: spaces
// around and letter case do not count.
func sameForce(a, b string) bool {
	return strings.EqualFold(strings.TrimSpace(a), strings.TrimSpace(b))
}

// forceURN picks, of us, the URN of force to quote at now: of those not
// expired the one that lasts longest (found and valid), else the one that
// expired last (found, not valid).
func forceURN(us []PoliceURN, force string, now time.Time) (u PoliceURN, found, valid bool) {
	for _, c := range us {
		if !sameForce(c.Force, force) {
			continue
		}
		ok := now.Before(c.Expiry)
		switch {
		case !found, ok && !valid, ok == valid && c.Expiry.After(u.Expiry):
			u, found, valid = c, true, ok
		}
	}
	return u, found, valid
}

// checkURN checks a police call on the URN route to force about alarm a
// at now, and returns the URN to quote; it refuses with a *RuleError
// naming entry.route (the alarm is not eligible) or entry.force (no valid
// URN for it), which says what to do instead.
func checkURN(txn *badger.Txn, a *Alarm, force string, now time.Time) (string, error) {
	ok, why, err := urnEligible(txn, a)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", ruleErr(CodeURNRefused, "entry.route", "no police call on a lone-worker URN about this alarm: %s; %s", why, URNAlternative)
	}
	var us []PoliceURN
	if a.OrgID != "" {
		org, err := getOrg(txn, a.OrgID)
		switch {
		case err == nil:
			us = org.URNs
		case !errors.Is(err, ErrNotFound):
			return "", err
		}
	}
	u, found, valid := forceURN(us, force, now)
	switch {
	case !found:
		return "", ruleErr(CodeURNRefused, "entry.force", "the organisation holds no URN for the force %q; %s", force, URNAlternative)
	case !valid:
		return "", ruleErr(CodeURNRefused, "entry.force", "the URN for the force %q expired on %s; %s", u.Force, u.Expiry.Format(urnDate), URNAlternative)
	}
	return u.URN, nil
}

// urnDate is how refusals write a URN's expiry.
const urnDate = "2 Jan 2006"

// URNCheck is whether an operator may call the police on a lone-worker URN
// about an alarm now, and the URNs of its organisation, one per force.
type URNCheck struct {
	Eligible bool `json:"eligible"`
	// Why the alarm is eligible or not; when it is not, the operator
	// calls 999 if life is at risk, otherwise 101 (URNAlternative).
	Why  string     `json:"why"`
	URNs []ForceURN `json:"urns"`
}

// ForceURN is the URN of one force an operator would quote: the one not
// expired, else the one that expired last.
type ForceURN struct {
	Force   string    `json:"force"`
	URN     string    `json:"urn"`
	Expiry  time.Time `json:"expiry"`
	Expired bool      `json:"expired"`
}

// URNFor says whether a police call on a lone-worker URN about alarm
// alarmID would be accepted now, as this node's state has it: the rule
// itself is applied by the state machine when the call is logged.
func (s *Service) URNFor(alarmID string) (*URNCheck, error) {
	now := s.Now()
	out := &URNCheck{URNs: []ForceURN{}}
	err := s.view(func(txn *badger.Txn) error {
		a, err := LookupAlarm(txn, alarmID)
		if err != nil {
			return err
		}
		if out.Eligible, out.Why, err = urnEligible(txn, a); err != nil {
			return err
		}
		if a.OrgID == "" {
			return nil
		}
		org, err := getOrg(txn, a.OrgID)
		if errors.Is(err, ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		for _, c := range org.URNs {
			seen := false
			for _, f := range out.URNs {
				seen = seen || sameForce(f.Force, c.Force)
			}
			if seen {
				continue
			}
			u, _, valid := forceURN(org.URNs, c.Force, now)
			out.URNs = append(out.URNs, ForceURN{Force: u.Force, URN: u.URN, Expiry: u.Expiry, Expired: !valid})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
