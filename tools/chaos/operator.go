package chaos

// The operator: while the faults run, it takes alarms from the open queue
// of whichever node answers, acknowledges and closes them through the API,
// as an operator at a console would, and records every close it sent. The
// checker then knows which closed alarms an operator closed.

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/ui/api"
)

// Operator figures.
const (
	// OperatorActor is the actor of the operator's commands: the API
	// records the caller, here the harness's API token (tokenName).
	OperatorActor = "token:" + tokenName
	// operatorEvery is the time between two looks at the queue.
	operatorEvery = time.Second
	// operatorBatch is the most alarms handled per look.
	operatorBatch = 8
	// operatorTimeout bounds one command: shorter than the cluster's apply
	// timeout, so that a node cut off from the leader is left quickly.
	operatorTimeout = 5 * time.Second
	// queueTimeout bounds one read of the open queue.
	queueTimeout = 5 * time.Second
)

// operator acknowledges and closes the alarms of the devices it handles.
type operator struct {
	c       *Cluster
	rng     *rand.Rand
	handles func(deviceID string) bool

	mu      sync.Mutex
	tried   map[string]bool // alarm IDs whose close was sent, answered or not
	closed  map[string]bool // alarm IDs whose close was answered 200
	acks    int
	errs    int
	refused int
}

func newOperator(c *Cluster, seed uint64, handles func(string) bool) *operator {
	return &operator{c: c, rng: rand.New(rand.NewPCG(seed, 0x09e)), handles: handles,
		tried: map[string]bool{}, closed: map[string]bool{}}
}

// run works the queue until ctx ends.
func (o *operator) run(ctx context.Context) {
	t := time.NewTicker(operatorEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		o.round(ctx)
	}
}

// round reads the queue of one node that answers and handles the oldest
// alarms of the devices it handles, through that node.
func (o *operator) round(ctx context.Context) {
	order := o.rng.Perm(len(o.c.nodes))
	for _, i := range order {
		n := o.c.nodes[i]
		if !n.running() || n.paused {
			continue
		}
		var q api.AlarmsResponse
		if err := o.c.getJSON(ctx, n, "/api/v1/alarms", queueTimeout, &q); err != nil {
			continue
		}
		todo := o.pick(q.Alarms)
		for _, a := range todo {
			if !o.handle(ctx, n, a) {
				break // this node cannot commit now; next round
			}
		}
		return
	}
}

// pick returns up to operatorBatch alarms to handle, oldest first.
func (o *operator) pick(open []monitoring.Alarm) []monitoring.Alarm {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []monitoring.Alarm
	for _, a := range open {
		if o.handles(a.DeviceID) && !o.closed[a.ID] {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b monitoring.Alarm) int { return a.RaisedAt.Compare(b.RaisedAt) })
	return out[:min(len(out), operatorBatch)]
}

// handle acknowledges and closes one alarm through node n. The command IDs
// are fixed per alarm, so a retry in a later round is applied once. It
// reports whether n committed both.
func (o *operator) handle(ctx context.Context, n *node, a monitoring.Alarm) bool {
	ack := api.AcknowledgeRequest{Command: api.Command{ID: "op-ack-" + a.ID, Actor: OperatorActor}}
	err := o.c.send(ctx, n, "POST", "/api/v1/alarms/"+a.ID+"/acknowledge", operatorTimeout, ack, nil)
	switch code := statusCode(err); {
	case err == nil:
		o.count(&o.acks)
	case code == 409: // taken already: the close tells
	default:
		o.count(&o.errs)
		return false
	}
	closeReq := api.CloseRequest{Command: api.Command{ID: "op-close-" + a.ID, Actor: OperatorActor},
		Resolution: monitoring.ResolutionFalseAlarm, Confirmation: monitoring.ConfirmedByWorker, Note: "closed by the chaos harness"}
	o.mu.Lock()
	o.tried[a.ID] = true
	o.mu.Unlock()
	err = o.c.send(ctx, n, "POST", "/api/v1/alarms/"+a.ID+"/close", operatorTimeout, closeReq, nil)
	switch code := statusCode(err); {
	case err == nil:
		o.mu.Lock()
		o.closed[a.ID] = true
		o.mu.Unlock()
		return true
	case code == 409 || code == 422:
		o.count(&o.refused)
		return true
	default:
		o.count(&o.errs)
		return false
	}
}

func (o *operator) count(v *int) {
	o.mu.Lock()
	*v++
	o.mu.Unlock()
}

// record returns what the operator did.
func (o *operator) record() OperatorRecord {
	o.mu.Lock()
	defer o.mu.Unlock()
	r := OperatorRecord{Tried: map[string]bool{}, Closed: map[string]bool{}, Acks: o.acks, Errors: o.errs, Refused: o.refused}
	for k := range o.tried {
		r.Tried[k] = true
	}
	for k := range o.closed {
		r.Closed[k] = true
	}
	return r
}

// OperatorRecord is what the operator did during a run.
type OperatorRecord struct {
	Tried   map[string]bool // alarms whose close was sent
	Closed  map[string]bool // alarms whose close was answered 200
	Acks    int             // acknowledgements answered 200
	Errors  int             // commands with no answer, or 5xx
	Refused int             // closes refused (409, 422)
}
