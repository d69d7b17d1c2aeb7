package chaos

// The operator's promise: only the operator closes alarms, and every close
// it was answered for is there.

import "github.com/vigilarc/vigil/appliance/monitoring"

// checkCloses checks that every closed alarm was closed by the operator,
// and every close the operator was answered for is there.
func checkCloses(v *Verdict, in checkInput, _ *checkIndex) {
	spurious := map[string]bool{}
	lostClose := map[string]bool{}
	for i, nv := range in.views {
		for id, da := range nv.alarms {
			a := da.Alarm
			if a.Status != monitoring.StatusClosed {
				if in.op.Closed[id] {
					lostClose[id] = true
					v.problem("%s: alarm %s, whose close the operator was answered for, is %s", nv.name, id, a.Status)
				}
				continue
			}
			if !in.op.Tried[id] || a.ClosedBy != OperatorActor {
				spurious[id] = true
				v.problem("%s: alarm %s is closed by %q with %q, but no operator closed it", nv.name, id, a.ClosedBy, a.Resolution)
			} else if i == 0 {
				v.ClosedByOp++
			}
		}
	}
	for id := range in.op.Closed {
		for _, nv := range in.views {
			if _, ok := nv.alarms[id]; !ok {
				lostClose[id] = true
				v.problem("%s: alarm %s, closed by the operator, is missing", nv.name, id)
			}
		}
	}
	v.Spurious = len(spurious)
	v.Lost += len(lostClose)
}
