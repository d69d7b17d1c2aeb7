package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"time"
)

// Credential is what one simulated device needs: its ID and secret, and its
// worker's PINs.
type Credential struct {
	DeviceID  string `json:"device_id"`
	Secret    string `json:"secret"`
	WorkerID  string `json:"worker_id"`
	Name      string `json:"name"`
	Team      string `json:"team"`
	SafePIN   string `json:"safe_pin"`
	DuressPIN string `json:"duress_pin"`
}

// TokenEnv is the environment variable whose API token Provision sends.
const TokenEnv = "VIGIL_API_TOKEN"

// API is a node's HTTP API as provisioning reaches it.
type API struct {
	// URL is the node's API, such as http://127.0.0.1:8080; http:// is
	// assumed when it has no scheme.
	URL string
	// Token is an admin API token (docs/api.md), or the node's own setup
	// token, sent as Authorization: Bearer. Provisioning makes workers,
	// PINs, devices and their secrets, which only an admin may.
	Token string
	// Client sends the requests; nil means a client with a 15-second
	// timeout that trusts the system's roots. A caller reaching a node's
	// HTTPS with the cluster CA's certificate gives one that trusts it.
	Client *http.Client
}

// errConflict is a 409 from the API.
var errConflict = errors.New("conflict")

// Provision is ProvisionWith for the API at apiURL with the token in
// $VIGIL_API_TOKEN (TokenEnv): for callers that predate API tokens and
// have none to pass (the chaos harness sets the variable).
func Provision(ctx context.Context, apiURL, prefix, run string, n int, rng *rand.Rand) ([]Credential, error) {
	return ProvisionWith(ctx, API{URL: apiURL, Token: os.Getenv(TokenEnv)}, prefix, run, n, rng)
}

// ProvisionWith creates, through the HTTP API, an organisation, n workers
// with PINs and n devices, and issues each device a new secret. IDs are
// prefix-org, prefix-w001, prefix-d001...; creating them again with the
// same prefix reuses them (their command IDs are fixed), while PINs and
// secrets are issued anew under run, which must differ between runs.
func ProvisionWith(ctx context.Context, a API, prefix, run string, n int, rng *rand.Rand) ([]Credential, error) {
	api := newAPIClient(a)
	org := prefix + "-org"
	err := api.create(ctx, "/api/v1/organisations", "organisation "+org, map[string]any{
		"id": prefix + "-c-org",
		"org": map[string]any{"id": org, "name": "Riverside Community Care (simulated)", "default_session": "45m",
			"procedure": "Call the worker; if no answer or duress, call 999 and give the last location."},
	})
	if err != nil {
		return nil, err
	}
	creds := make([]Credential, n)
	for i := range creds {
		c := &creds[i]
		c.WorkerID, c.DeviceID = fmt.Sprintf("%s-w%03d", prefix, i+1), fmt.Sprintf("%s-d%03d", prefix, i+1)
		c.Name, c.Team = personName(i), roles[i%len(roles)].team
		worker := map[string]any{"id": c.WorkerID, "name": c.Name, "org_id": org, "team": c.Team,
			"phone": fmt.Sprintf("+44 7700 900%03d", i%1000)}
		device := map[string]any{"id": c.DeviceID, "kind": "phone_app", "label": "Phone of " + c.Name,
			"org_id": org, "worker_id": c.WorkerID}
		if err := api.provisionDevice(ctx, c, prefix+"-c-", run, worker, device, rng); err != nil {
			return nil, err
		}
	}
	return creds, nil
}

// provisionDevice draws the PINs of c's worker from rng and, through api,
// creates the worker and the device (keeping them if they exist already),
// sets the PINs and issues the device a new secret into c. The command IDs
// start with cmd; those of the PINs and the secret end with run.
func (a *apiClient) provisionDevice(ctx context.Context, c *Credential, cmd, run string, worker, device map[string]any, rng *rand.Rand) error {
	c.SafePIN = fmt.Sprintf("%04d", rng.IntN(10000))
	for c.DuressPIN == "" || c.DuressPIN == c.SafePIN {
		c.DuressPIN = fmt.Sprintf("%04d", rng.IntN(10000))
	}
	err := a.create(ctx, "/api/v1/workers", "worker "+c.WorkerID, map[string]any{
		"id": cmd + c.WorkerID, "worker": worker,
	})
	if err != nil {
		return err
	}
	err = a.post(ctx, "/api/v1/workers/"+c.WorkerID+"/pins", map[string]any{
		"id":       cmd + "pins-" + c.WorkerID + "-" + run,
		"safe_pin": c.SafePIN, "duress_pin": c.DuressPIN,
	}, nil)
	if err != nil {
		return fmt.Errorf("cannot set the PINs of worker %s: %w", c.WorkerID, err)
	}
	err = a.create(ctx, "/api/v1/devices", "device "+c.DeviceID, map[string]any{
		"id": cmd + c.DeviceID, "device": device,
	})
	if err != nil {
		return err
	}
	var sec struct {
		Secret string `json:"secret"`
	}
	err = a.post(ctx, "/api/v1/devices/"+c.DeviceID+"/secret", map[string]any{
		"id": cmd + "secret-" + c.DeviceID + "-" + run,
	}, &sec)
	if err != nil {
		return fmt.Errorf("cannot issue the secret of device %s: %w", c.DeviceID, err)
	}
	c.Secret = sec.Secret
	return nil
}

// refused explains a 401 or 403 from the API: provisioning needs an admin
// API token.
func (a *apiClient) refused(status int, body []byte) error {
	msg := strings.TrimSpace(string(body))
	var e struct{ Error string }
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	given := "no API token was given"
	if a.token != "" {
		given = "the API token was refused"
		if status == http.StatusForbidden {
			given = "the API token's role may not provision"
		}
	}
	return fmt.Errorf("the API at %s refused provisioning, %s (HTTP %d: %s): provisioning makes workers, PINs, devices and "+
		"their secrets, which needs an admin API token (vigil token create --name sim --role admin); give it with --token or $%s",
		a.base, given, status, msg, TokenEnv)
}

// ReadCredentials reads credentials written by WriteCredentials.
func ReadCredentials(path string) ([]Credential, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read credentials: %w", err)
	}
	var creds []Credential
	if err := json.Unmarshal(b, &creds); err != nil {
		return nil, fmt.Errorf("cannot decode credentials %s: %w", path, err)
	}
	return creds, nil
}

// WriteCredentials writes creds as a JSON array, readable only by the owner.
func WriteCredentials(path string, creds []Credential) error {
	b, err := json.MarshalIndent(creds, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o600)
}

// apiClient posts to one node's HTTP API, retrying with the same command ID
// while the cluster has no leader or the outcome is unknown.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

// newAPIClient returns a client of the HTTP API a (http:// is assumed when
// its URL has no scheme).
func newAPIClient(a API) *apiClient {
	u := a.URL
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	c := a.Client
	if c == nil {
		c = &http.Client{Timeout: 15 * time.Second}
	}
	return &apiClient{base: strings.TrimRight(u, "/"), token: a.Token, http: c}
}

// create posts body, which creates what, to path; a 409 (it exists
// already) is no error.
func (a *apiClient) create(ctx context.Context, path, what string, body any) error {
	if err := a.post(ctx, path, body, nil); err != nil && !errors.Is(err, errConflict) {
		return fmt.Errorf("cannot create %s: %w", what, err)
	}
	return nil
}

// post sends body and decodes a 2xx reply into out (when not nil). A 409 is
// returned as errConflict.
func (a *apiClient) post(ctx context.Context, path string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	var last error
	for try := 0; try < 10; try++ {
		if try > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.base+path, bytes.NewReader(b))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		if a.token != "" {
			req.Header.Set("Authorization", "Bearer "+a.token)
		}
		resp, err := a.http.Do(req)
		if err != nil {
			last = fmt.Errorf("cannot reach %s: %w", a.base, err)
			continue
		}
		rb, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		switch {
		case err != nil:
			last = fmt.Errorf("cannot read reply from %s: %w", a.base, err)
		case resp.StatusCode == http.StatusServiceUnavailable, resp.StatusCode == http.StatusGatewayTimeout:
			last = fmt.Errorf("HTTP %d from %s", resp.StatusCode, a.base)
		case resp.StatusCode == http.StatusConflict:
			return fmt.Errorf("%w: %s", errConflict, strings.TrimSpace(string(rb)))
		case resp.StatusCode == http.StatusUnauthorized, resp.StatusCode == http.StatusForbidden:
			return a.refused(resp.StatusCode, rb)
		case resp.StatusCode/100 != 2:
			return fmt.Errorf("HTTP %d from %s: %s", resp.StatusCode, a.base, strings.TrimSpace(string(rb)))
		case out != nil:
			return json.Unmarshal(rb, out)
		default:
			return nil
		}
	}
	return last
}
