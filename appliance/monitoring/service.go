package monitoring

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"

	"github.com/vigilarc/vigil/cluster"
)

// Cluster is what the Service needs from the cluster node.
type Cluster interface {
	Apply(ctx context.Context, id string, data []byte) (cluster.Result, error)
	View(fn func(txn *badger.Txn) error) error
	LinearizableView(ctx context.Context, fn func(txn *badger.Txn) error) error
	ID() string
}

var _ Cluster = (*cluster.Node)(nil)

// Service is the monitoring API that the broker and the console call. Each
// method validates its input and returns a *RuleError naming the field
// before anything is replicated; then it proposes one command, with an ID,
// and returns once the command is committed and applied.
//
// Methods take a command ID (cmdID): the device's event ID or the console's
// request ID. A retry with the same ID returns the first result and changes
// nothing.
type Service struct {
	cluster Cluster
	fsm     *FSM
	logger  *slog.Logger
	// Now and NewID are the clock and the ID source; tests replace them.
	Now   func() time.Time
	NewID func() string

	secrets secretCache // successful device secret checks (devicesecret.go)
	hashes  *hashPool   // every password, PIN and secret hash (hashpool.go)
	// rulesFloor, when set, says which rules every member can apply
	// (SetRulesFloor, rulesfloor.go).
	rulesFloor atomic.Pointer[RulesFloor]
}

// NewService returns the Service over a cluster node hosting fsm.
func NewService(c Cluster, fsm *FSM, logger *slog.Logger) *Service {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Service{
		cluster: c, fsm: fsm, logger: logger,
		Now:    func() time.Time { return time.Now().UTC() },
		NewID:  func() string { return uuid.NewString() },
		hashes: newHashPool(0, DefaultHashWait),
	}
}

// Subscribe returns a subscription to this node's events (events.go).
func (s *Service) Subscribe(buffer int) *Subscription { return s.fsm.Bus().Subscribe(buffer) }

// header stamps a command with the time, the actor and this node.
func (s *Service) header(actor string) Header {
	return Header{At: s.Now(), Actor: actor, Node: s.cluster.ID()}
}

// propose replicates one command and returns the state machine's response.
// A refusal comes back as a *RuleError.
func (s *Service) propose(ctx context.Context, cmdID string, t CmdType, body any) (cluster.Result, error) {
	if cmdID == "" {
		return cluster.Result{}, invalid("id", "every command needs an ID; reuse it when retrying")
	}
	if err := s.typeAgreed(ctx, t); err != nil {
		return cluster.Result{}, err
	}
	res, err := s.cluster.Apply(ctx, t.String()+"/"+cmdID, s.agreedRules(ctx, t, encode(t, body)))
	var refused *cluster.RefusedError
	if errors.As(err, &refused) {
		return res, ParseRefusal(refused.Reason)
	}
	return res, err
}

// view runs fn on this node's state (a few milliseconds behind at most).
func (s *Service) view(fn func(txn *badger.Txn) error) error { return s.cluster.View(fn) }
