package chaos

// The replicas' promise: every node has the same state.

// checkSame checks that every node has the same hash at the same index and
// the same alarms in the same states.
func checkSame(v *Verdict, in checkInput, _ *checkIndex) {
	if len(in.views) == 0 {
		return
	}
	first := in.views[0]
	for _, nv := range in.views[1:] {
		if nv.state.AppliedIndex == first.state.AppliedIndex && nv.state.Hash != first.state.Hash {
			v.Diverged = true
			v.problem("%s and %s differ at applied index %d: state hash %.12s and %.12s",
				first.name, nv.name, nv.state.AppliedIndex, first.state.Hash, nv.state.Hash)
		}
		for id, da := range first.alarms {
			other, ok := nv.alarms[id]
			switch {
			case !ok:
				v.Diverged = true
				v.problem("alarm %s is on %s, not on %s", id, first.name, nv.name)
			case other.Alarm.Status != da.Alarm.Status || other.Alarm.ClosedBy != da.Alarm.ClosedBy:
				v.Diverged = true
				v.problem("alarm %s is %s on %s, %s on %s", id, da.Alarm.Status, first.name, other.Alarm.Status, nv.name)
			}
		}
		for id := range nv.alarms {
			if _, ok := first.alarms[id]; !ok {
				v.Diverged = true
				v.problem("alarm %s is on %s, not on %s", id, nv.name, first.name)
			}
		}
	}
}
