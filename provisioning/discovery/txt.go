package discovery

import (
	"net"
	"strconv"
	"strings"
)

// The TXT record of an announcement is a list of key=value strings:
//
//	v=1            the version of these rules; required, and must be 1
//	node=<id>      the node ID; required
//	cluster=<id>   the cluster ID; absent while in no cluster
//	name=<name>    a readable name; optional
//	state=<state>  required
//	cport=<port>   the cluster port; optional
//
// Unknown keys are ignored, so a later version can add fields; a change
// that older appliances must not misread bumps v instead. Every present
// field must follow its rule, or the whole announcement is dropped: a
// stranger's malformed field is never repaired or partly used.
const (
	txtVersion = "1"

	// MaxIDLen bounds a node or cluster ID, whose bytes are [A-Za-z0-9._-].
	MaxIDLen = 64
	// MaxNameLen bounds a name, whose bytes are printable ASCII but for
	// '"' and '\'.
	MaxNameLen = 63
	// MaxStateLen bounds a state, whose bytes are [a-z].
	MaxStateLen = 16

	// maxTXT bounds the number of strings in a TXT record, and maxKeyLen
	// a key, whose bytes are [a-z0-9-].
	maxTXT    = 16
	maxKeyLen = 16
)

// The keys of the TXT record.
const (
	keyVersion     = "v"
	keyNode        = "node"
	keyCluster     = "cluster"
	keyName        = "name"
	keyState       = "state"
	keyClusterPort = "cport"
)

// txt is the TXT record of a.
func (a Announcement) txt() []string {
	t := []string{keyVersion + "=" + txtVersion, keyNode + "=" + a.NodeID}
	if a.ClusterID != "" {
		t = append(t, keyCluster+"="+a.ClusterID)
	}
	if a.Name != "" {
		t = append(t, keyName+"="+a.Name)
	}
	t = append(t, keyState+"="+a.State)
	if a.ClusterPort != 0 {
		t = append(t, keyClusterPort+"="+strconv.Itoa(a.ClusterPort))
	}
	return t
}

// check applies the rules Browse reads announcements by to a, so that an
// appliance never announces what its peers would drop.
func (a Announcement) check() error {
	if _, err := parseTXT(a.txt()); err != nil {
		return err
	}
	return checkPort("port", strconv.Itoa(a.Port))
}

// parseTXT reads a peer's TXT record into p's ID, cluster, name, state
// and cluster port, or says which rule it breaks. The strings are as the
// DNS library gives them: a byte outside printable ASCII, '"' or '\'
// arrives escaped with a '\', which no rule allows.
func parseTXT(txt []string) (Peer, error) {
	var p Peer
	if len(txt) > maxTXT {
		return p, &FieldError{Field: "TXT record", Value: strconv.Itoa(len(txt)), Reason: "has more than 16 strings"}
	}
	seen := make(map[string]bool, len(txt))
	for _, kv := range txt {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return p, &FieldError{Field: "TXT string", Value: kv, Reason: "has no '='"}
		}
		if k == "" || len(k) > maxKeyLen || !only(k, isKeyByte) {
			return p, &FieldError{Field: "TXT key", Value: k, Reason: "is not 1 to 16 of [a-z0-9-]"}
		}
		if seen[k] {
			return p, &FieldError{Field: "TXT key", Value: k, Reason: "appears twice"}
		}
		seen[k] = true
		var err error
		switch k {
		case keyVersion:
			if v != txtVersion {
				err = &FieldError{Field: keyVersion, Value: v, Reason: "is not 1"}
			}
		case keyNode:
			p.NodeID, err = v, checkID(keyNode, v)
		case keyCluster:
			p.ClusterID, err = v, checkID(keyCluster, v)
		case keyName:
			p.Name, err = v, checkName(v)
		case keyState:
			p.State, err = v, checkState(v)
		case keyClusterPort:
			err = checkPort(keyClusterPort, v)
			p.ClusterPort, _ = strconv.Atoi(v)
		}
		if err != nil {
			return Peer{}, err
		}
	}
	for _, k := range []string{keyVersion, keyNode, keyState} {
		if !seen[k] {
			return Peer{}, &FieldError{Field: k, Reason: "is missing"}
		}
	}
	return p, nil
}

func checkID(field, id string) error {
	if id == "" || len(id) > MaxIDLen || !only(id, isIDByte) {
		return &FieldError{Field: field, Value: id, Reason: "is not 1 to 64 of [A-Za-z0-9._-]"}
	}
	return nil
}

func checkName(name string) error {
	if name == "" || len(name) > MaxNameLen || !only(name, isNameByte) {
		return &FieldError{Field: keyName, Value: name, Reason: "is not 1 to 63 printable ASCII characters without '\"' or '\\'"}
	}
	return nil
}

func checkState(state string) error {
	if state == "" || len(state) > MaxStateLen || !only(state, isLower) {
		return &FieldError{Field: keyState, Value: state, Reason: "is not 1 to 16 of [a-z]"}
	}
	return nil
}

// checkPort accepts a decimal port 1..65535 in its shortest form.
func checkPort(field, v string) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != v {
		return &FieldError{Field: field, Value: v, Reason: "is not a port from 1 to 65535"}
	}
	return nil
}

// usable reports whether a peer's announced address is worth dialling:
// not unspecified, multicast, broadcast, loopback (the dialler's own) or
// IPv6 link-local (which needs the zone an announcement cannot carry).
// IPv4 link-local stays: a LAN without DHCP has only those.
func usable(ip net.IP) bool {
	v6LinkLocal := ip.To4() == nil && ip.IsLinkLocalUnicast()
	return !ip.IsUnspecified() && !ip.IsMulticast() && !ip.IsLoopback() &&
		!v6LinkLocal && !ip.Equal(net.IPv4bcast)
}

func only(s string, ok func(byte) bool) bool {
	for i := range len(s) {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

func isLower(b byte) bool { return 'a' <= b && b <= 'z' }

func isDigit(b byte) bool { return '0' <= b && b <= '9' }

func isKeyByte(b byte) bool { return isLower(b) || isDigit(b) || b == '-' }

func isIDByte(b byte) bool {
	return isLower(b) || ('A' <= b && b <= 'Z') || isDigit(b) || b == '.' || b == '_' || b == '-'
}

func isNameByte(b byte) bool { return ' ' <= b && b <= '~' && b != '"' && b != '\\' }
