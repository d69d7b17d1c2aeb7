package main

// HTTP to the Vigil nodes. Every request the bench sends to a node, to its
// API (/api/v1), its console (/ui) or its profiles, goes through
// vigilHTTP.do, the one place that sets the Authorization header, so that
// the API token is given in one place.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/ui/auth"
	"github.com/vigilarc/vigil/ui/console"
)

// apiPrefix is the path prefix of the nodes' HTTP API, the requests that
// carry the API token.
const apiPrefix = "/api/"

// vigilHTTP is an HTTP client for the Vigil nodes.
type vigilHTTP struct {
	client *http.Client
	// apiToken is sent as "Authorization: Bearer <apiToken>" on every
	// request to the API (apiPrefix) that carries no Authorization of its
	// own: an API token (vgt_...) from obtainAPIToken. Console requests go with their session cookie, setup
	// requests with the node's setup token, set by the caller.
	apiToken string
}

// do sends req to a Vigil node, with the API token when req is an API
// request without an Authorization header.
func (h vigilHTTP) do(req *http.Request) (*http.Response, error) {
	if h.apiToken != "" && req.Header.Get("Authorization") == "" && strings.HasPrefix(req.URL.Path, apiPrefix) {
		req.Header.Set("Authorization", "Bearer "+h.apiToken)
	}
	return h.client.Do(req)
}

// obtainAPIToken makes the admin API token the bench sends on its /api/v1
// requests to c's nodes, through the first node's local setup API: POST
// /ui/setup/tokens, authorised by the setup token the node writes to its
// data directory at each start (auth.SetupTokenFileName). startAll calls it
// once the nodes are started, before it asks them for a leader (an API
// request), so it retries until the cluster can commit the token. The
// token is replicated state: it outlives the nodes' restarts. A retry
// after a lost reply would find the name taken, so each attempt has a name
// of its own.
func obtainAPIToken(ctx context.Context, c *localCluster) (string, error) {
	n := c.nodes[0]
	var secret string
	var last error
	attempt := 0
	err := pollUntil(ctx, startTimeout, func() bool {
		attempt++
		secret, last = makeAPIToken(ctx, c, n, fmt.Sprintf("bench-%d-%d", os.Getpid(), attempt))
		if last != nil {
			time.Sleep(200 * time.Millisecond)
		}
		return last == nil
	})
	if err != nil {
		return "", fmt.Errorf("%w: %v", err, last)
	}
	return secret, nil
}

// makeAPIToken asks node n for one admin API token named name.
func makeAPIToken(ctx context.Context, c *localCluster, n *node, name string) (string, error) {
	setup, err := os.ReadFile(filepath.Join(n.dataDir, auth.SetupTokenFileName))
	if err != nil {
		return "", fmt.Errorf("cannot read %s's setup token: %w", n.name, err)
	}
	body, err := json.Marshal(console.SetupTokenRequest{Name: name, Role: monitoring.RoleAdmin})
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+n.httpAddr+console.Prefix+"/setup/tokens", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(setup)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := vigilHTTP{client: http.DefaultClient}.do(req) // ctx bounds it: a commit may take seconds here
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	var made monitoring.NewAPIToken
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(b, &made) != nil || made.Secret == "" {
		return "", fmt.Errorf("POST %s/setup/tokens on %s: HTTP %d: %s", console.Prefix, n.name, resp.StatusCode, bytes.TrimSpace(b))
	}
	return made.Secret, nil
}
