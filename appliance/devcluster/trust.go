package devcluster

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/vigilarc/vigil/provisioning"
)

// The nodes' trust. A node of a cluster of several starts only with its
// certificate from the cluster's CA in its data directory (vigil init and
// vigil join give it on real appliances). Devcluster prepares all three
// on one machine, as the operator who set them up would: on the first run
// it makes a CA and a certificate for each node; later runs find them.

// devNames are the names of a devcluster node's certificate: it listens
// on loopback only.
var devNames = provisioning.NodeNames{DNS: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}}

// ensureTrust makes the nodes' trust when none of them has any. It
// refuses when some have trust and others not, or when they hold the
// trust of different clusters: the cluster could not form, and which
// data to keep is the developer's choice (delete --dir to start afresh).
func ensureTrust(nodes []*devNode, dir string) (made bool, err error) {
	var with, without []string
	fingerprints := map[string]string{} // node name -> CA fingerprint
	for _, n := range nodes {
		t, err := provisioning.LoadTrust(n.dataDir)
		switch {
		case errors.Is(err, provisioning.ErrNoTrust):
			without = append(without, n.name)
		case err != nil:
			return false, fmt.Errorf("%s: %w", n.name, err)
		case t.NodeID() != n.name:
			return false, fmt.Errorf("%s: the certificate in %s names node %q: delete %s to start afresh",
				n.name, filepath.Join(n.dataDir, provisioning.TrustDir), t.NodeID(), dir)
		default:
			with = append(with, n.name)
			fingerprints[n.name] = t.CA.Fingerprint()
		}
	}
	if len(with) > 0 && len(without) > 0 {
		return false, fmt.Errorf("%s hold(s) cluster trust in <data dir>/%s but %s not: the nodes cannot form one cluster; delete %s to start afresh",
			strings.Join(with, ", "), provisioning.TrustDir, strings.Join(without, ", "), dir)
	}
	for _, name := range with {
		if fingerprints[name] != fingerprints[with[0]] {
			return false, fmt.Errorf("%s and %s hold the trust of different cluster CAs: delete %s to start afresh", with[0], name, dir)
		}
	}
	if len(without) == 0 {
		return false, nil
	}
	dirs := map[string]string{}
	for _, n := range nodes {
		dirs[n.name] = n.dataDir
	}
	if _, err := provisioning.ProvisionNodes(uuid.NewString(), dirs, devNames, time.Now()); err != nil {
		return false, fmt.Errorf("cannot make the nodes' cluster certificates: %w", err)
	}
	return true, nil
}
