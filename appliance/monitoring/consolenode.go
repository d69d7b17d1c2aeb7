package monitoring

// The console nodes: where each node serves its console and its MQTT
// listeners, as each node registers itself when it starts. The console
// uses the list to move a page to another node when its own stops, and to
// give an enrolled device every node's MQTT address.
//
// Keys (a prefix, once used, keeps its meaning forever):
//
//	consolenode/<node id>    ConsoleNode

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// pConsoleNode is the key prefix of console nodes.
const pConsoleNode = "consolenode/"

// Limits of a console node's record.
const (
	MaxConsoleNodeURLs = 8
	maxNodeURLLen      = 300
	maxNodeNameLen     = 63
)

// ConsoleNode is where one node serves the console and its MQTT listeners.
type ConsoleNode struct {
	NodeID string `json:"node_id"`
	// Name is the node's readable name (the appliance's host name), for
	// people; empty when it gave none.
	Name string `json:"name,omitempty"`
	// URL is the console's origin as browsers reach it, such as
	// "https://vigil-1.example.org".
	URL string `json:"url"`
	// MQTT lists the node's MQTT listeners as devices reach them, such as
	// "tcp://10.0.0.5:1883".
	MQTT      []string  `json:"mqtt,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// putConsoleNodeCmd records where a node serves its console.
type putConsoleNodeCmd struct {
	Header
	Node ConsoleNode `json:"node"`
}

// validConsoleURL reports why u is not an origin: http(s)://host[:port],
// nothing more.
func validConsoleURL(field, u string) error {
	p, err := url.Parse(u)
	switch {
	case len(u) > maxNodeURLLen:
		return invalid(field, "is longer than %d bytes", maxNodeURLLen)
	case err != nil:
		return invalid(field, "is not a URL: %v", err)
	case p.Scheme != "http" && p.Scheme != "https", p.Host == "", p.User != nil,
		p.Path != "" && p.Path != "/", p.RawQuery != "", p.Fragment != "", p.Opaque != "":
		return invalid(field, "%q must be http(s)://host[:port]", u)
	}
	return nil
}

// validMQTTURL reports why u is not an MQTT listener's address.
func validMQTTURL(field, u string) error {
	p, err := url.Parse(u)
	switch {
	case len(u) > maxNodeURLLen:
		return invalid(field, "is longer than %d bytes", maxNodeURLLen)
	case err != nil:
		return invalid(field, "is not a URL: %v", err)
	case !slices.Contains([]string{"tcp", "ssl", "mqtts", "ws", "wss"}, p.Scheme), p.Host == "", p.Port() == "", p.User != nil:
		return invalid(field, "%q must be tcp://, ssl://, mqtts://, ws:// or wss:// host:port", u)
	}
	return nil
}

// validateConsoleNode checks a console node's fields.
func validateConsoleNode(n *ConsoleNode) error {
	if err := validID("node.node_id", n.NodeID); err != nil {
		return err
	}
	if err := validConsoleURL("node.url", n.URL); err != nil {
		return err
	}
	if len(n.Name) > maxNodeNameLen {
		return invalid("node.name", "is %d bytes, longer than %d", len(n.Name), maxNodeNameLen)
	}
	if err := validDisplay("node.name", n.Name); err != nil {
		return err
	}
	if len(n.MQTT) > MaxConsoleNodeURLs {
		return invalid("node.mqtt", "lists more than %d addresses", MaxConsoleNodeURLs)
	}
	for i, u := range n.MQTT {
		if err := validMQTTURL(fmt.Sprintf("node.mqtt[%d]", i), u); err != nil {
			return err
		}
	}
	return nil
}

// applyPutConsoleNode records a node's console and MQTT addresses. A
// change is audited; the same addresses again only refresh UpdatedAt.
func applyPutConsoleNode(c *applyCtx, body []byte) ([]byte, error) {
	var cmd putConsoleNodeCmd
	if err := c.decode(body, &cmd); err != nil {
		return nil, err
	}
	n := cmd.Node
	n.URL = strings.TrimSuffix(n.URL, "/")
	if err := validateConsoleNode(&n); err != nil {
		return nil, err
	}
	var old ConsoleNode
	found, err := getJSON(c.txn, pConsoleNode+n.NodeID, &old)
	if err != nil {
		return nil, err
	}
	n.UpdatedAt = c.now()
	if err := putJSON(c.txn, pConsoleNode+n.NodeID, &n); err != nil {
		return nil, err
	}
	if !found || old.URL != n.URL || old.Name != n.Name || !slices.Equal(old.MQTT, n.MQTT) {
		detail := fmt.Sprintf("%s: console at %s, MQTT at %s", cmp.Or(n.Name, "unnamed"), n.URL, strings.Join(n.MQTT, " "))
		if err := c.audit(CmdPutConsoleNode, "node/"+n.NodeID, detail); err != nil {
			return nil, err
		}
	}
	return json.Marshal(&n)
}

// RegisterConsoleNode records where a node serves its console and its MQTT
// listeners, and returns the record as stored.
func (s *Service) RegisterConsoleNode(ctx context.Context, cmdID string, n ConsoleNode) (*ConsoleNode, error) {
	n.URL = strings.TrimSuffix(n.URL, "/")
	if err := validateConsoleNode(&n); err != nil {
		return nil, err
	}
	res, err := s.propose(ctx, cmdID, CmdPutConsoleNode, putConsoleNodeCmd{Header: s.header("node:" + n.NodeID), Node: n})
	if err != nil {
		return nil, err
	}
	return decodeResponse[ConsoleNode](res.Response)
}

// ConsoleNodes returns every node's console record, by node ID.
func (s *Service) ConsoleNodes() ([]ConsoleNode, error) {
	return listRecords[ConsoleNode](s, pConsoleNode, nil)
}

// ConsoleNode returns one node's console record.
func (s *Service) ConsoleNode(id string) (*ConsoleNode, error) {
	var n ConsoleNode
	var ok bool
	err := s.view(func(txn *badger.Txn) (err error) {
		ok, err = getJSON(txn, pConsoleNode+id, &n)
		return err
	})
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ruleErr(CodeNotFound, "node_id", "no console registered for node %q", id)
	}
	return &n, nil
}
