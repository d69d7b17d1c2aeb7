package monitoring

// Deadlines owned by a record other than a session: a device's offline
// threshold, an alarm's acknowledgement targets. Each owner has at most one
// deadline of each kind, found through ix/deadline-of/<owner>/<kind>, whose
// value is the deadline's key; a change to the owner replaces or deletes it
// there. (A session's deadlines are derived from the session instead:
// session.go.)

import (
	"errors"

	"github.com/dgraph-io/badger/v4"
)

// pDeadlineOf indexes owned deadlines: ix/deadline-of/<owner>/<kind> ->
// the deadline's key under ix/deadline/.
const pDeadlineOf = "ix/deadline-of/"

func deadlineOfKey(owner, kind string) []byte { return []byte(pDeadlineOf + owner + "/" + kind) }

// putOwnedDeadline writes d as owner's deadline of its kind, replacing the
// one it had.
func putOwnedDeadline(c *applyCtx, owner string, d *Deadline) error {
	if err := clearOwnedDeadline(c, owner, d.Kind); err != nil {
		return err
	}
	key := deadlineKey(d)
	if err := putJSON(c.txn, key, d); err != nil {
		return err
	}
	return c.txn.Set(deadlineOfKey(owner, d.Kind), []byte(key))
}

// ownedDeadline returns the key of owner's deadline of kind, or nil when it
// has none.
func ownedDeadline(c *applyCtx, owner, kind string) ([]byte, error) {
	item, err := c.txn.Get(deadlineOfKey(owner, kind))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

// clearOwnedDeadline deletes owner's deadline of kind, if it has one.
func clearOwnedDeadline(c *applyCtx, owner, kind string) error {
	key, err := ownedDeadline(c, owner, kind)
	if err != nil || key == nil {
		return err
	}
	if err := c.txn.Delete(key); err != nil {
		return err
	}
	return c.txn.Delete(deadlineOfKey(owner, kind))
}

// dropFiredDeadline deletes a deadline that fired (at key), and owner's
// index entry if it still names it.
func dropFiredDeadline(c *applyCtx, owner, key, kind string) error {
	if err := c.txn.Delete([]byte(key)); err != nil {
		return err
	}
	cur, err := ownedDeadline(c, owner, kind)
	if err != nil || string(cur) != key {
		return err // none, or a newer deadline replaced it: keep that
	}
	return c.txn.Delete(deadlineOfKey(owner, kind))
}
