package auth

// This node's setup token: the node writes a new one, at every start, to a
// file in its data directory readable only by the user the node runs as
// (SetupTokenFileName). Whoever can read that file can already read the
// node's whole state, so the token gives nothing more; nobody reaching the
// node over the network alone can use it. It authorises the local operator
// API (ui/console/setup.go: the vigil operator and vigil token commands)
// and is an admin on this node's REST API (apiauth.go), for vigil status
// and vigil cluster.

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/vigilarc/vigil/ui"
)

// SetupTokenFileName is the name of the file, in the node's data
// directory, that holds the node's setup token.
const SetupTokenFileName = "console-setup-token"

// SetupActor is the actor of the setup token's changes in the audit log.
const SetupActor = "local-setup"

// writeSetupToken writes a new random token to path, readable only by
// this user, and returns it.
func writeSetupToken(path string) (string, error) {
	tok := ui.RandomToken()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("cannot write the console setup token: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("cannot write the console setup token: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("cannot write the console setup token: %w", err)
	}
	return tok, nil
}

// ReadSetupToken reads the setup token that the node with data directory
// dataDir wrote (SetupTokenFileName). It is an admin on that node's REST API
// and its local setup API, and changes whenever the node starts.
func ReadSetupToken(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, SetupTokenFileName))
	if err != nil {
		return "", fmt.Errorf("cannot read the node's setup token (is the node running with data directory %s, and are you the user it runs as?): %w", dataDir, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// IsSetupToken reports whether got is this node's setup token.
func (a *Auth) IsSetupToken(got string) bool {
	a.setupMu.Lock()
	want := a.setupToken
	a.setupMu.Unlock()
	return want != "" && EqualTokens(want, got)
}

// RequireSetupToken is a middleware that lets a request through only with
// this node's setup token as its bearer token.
func (a *Auth) RequireSetupToken(c *gin.Context) {
	got, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	if !ok || !a.IsSetupToken(strings.TrimSpace(got)) {
		c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": "the local operator API needs the token from the node's data directory (" + SetupTokenFileName + "): run vigil operator on the appliance"})
		return
	}
	c.Next()
}
