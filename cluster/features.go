package cluster

// The features each member reports with its status (SetFeatures), as this
// node last heard them, are kept in the data directory, so that after a
// restart, or while a member is down, this node still knows what that
// member can apply (FeatureFloor). A member that never reported any is not
// in the file.

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
)

// peerFeaturesFile is the file, in the data directory, of the features the
// peers last reported.
const peerFeaturesFile = "peer-features.json"

// loadPeerFeatures reads the features the peers last reported, if this
// node kept any.
func (n *Node) loadPeerFeatures() {
	m := map[string]map[string]int{}
	if b, err := os.ReadFile(filepath.Join(n.cfg.DataDir, peerFeaturesFile)); err == nil {
		if err := json.Unmarshal(b, &m); err != nil {
			n.logger.Warn("cannot read the features the peers reported; asking them again", "error", err)
			m = map[string]map[string]int{}
		}
	}
	n.peersMu.Lock()
	n.peerFeatures = m
	n.peersMu.Unlock()
}

// notePeerFeatures records what peer id reported, under peersMu, and
// reports whether it changed. A peer that reports none (a build from
// before the features) is recorded as nothing, so that it counts as the
// baseline.
func (n *Node) notePeerFeatures(id string, f map[string]int) bool {
	if n.peerFeatures == nil {
		n.peerFeatures = map[string]map[string]int{}
	}
	old, had := n.peerFeatures[id]
	if f == nil {
		if !had {
			return false
		}
		delete(n.peerFeatures, id)
		return true
	}
	if had && maps.Equal(old, f) {
		return false
	}
	n.peerFeatures[id] = maps.Clone(f)
	return true
}

// savePeerFeatures writes the peers' features to the data directory. A
// failure is logged: the node asks its peers again after a restart.
func (n *Node) savePeerFeatures() {
	n.peersMu.Lock()
	b, err := json.Marshal(n.peerFeatures)
	n.peersMu.Unlock()
	if err != nil {
		return
	}
	path := filepath.Join(n.cfg.DataDir, peerFeaturesFile)
	tmp := path + ".tmp"
	err = os.WriteFile(tmp, b, 0o600)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		n.logger.Warn("cannot keep the features the peers reported", "error", err)
	}
}
