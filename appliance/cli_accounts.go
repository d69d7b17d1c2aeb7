package appliance

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/provisioning"
	"github.com/vigilarc/vigil/ui/auth"
	"github.com/vigilarc/vigil/ui/console"
)

// ErrUsage marks a command-line mistake whose message has been printed.
var ErrUsage = errors.New("usage error")

// CommandEnv is what the vigil operator and vigil token commands need from
// the vigil command line.
type CommandEnv struct {
	Stdout, Stderr io.Writer
	Stdin          io.Reader
	// LoadConfig returns the data directory and HTTP address of the node
	// configured by the file at path (none when empty), with the VIGIL_
	// environment applied; the address has https:// before it when the
	// node speaks HTTPS.
	LoadConfig func(path string) (dataDir, httpAddr string, err error)
	// Getenv reads an environment variable.
	Getenv func(string) string
}

const operatorUsage = `Usage:
  vigil operator create --id ID --name NAME [--role ROLE | --admin] --password-file FILE
  vigil operator password --id ID --password-file FILE
  vigil operator unlock --id ID
  vigil operator disable --id ID
  vigil operator enable --id ID
  vigil operator list

Manages console operator accounts through the node running on this
appliance. Run it on the appliance, as the user the node runs as: it reads
the node's configuration (--config, else $VIGIL_CONFIG) to find the node's
data directory and HTTP address, and authorises itself with the token the
node keeps in its data directory. Accounts are replicated: one node is
enough for the whole cluster.

ID is the name the operator signs in with; NAME is the full name shown in
the console. ROLE is operator (the default), supervisor or admin. The
password is read from the first line of FILE ("-" for standard input), never
from the command line; it has at least 10 characters. A new password also
unlocks the account and ends its sessions.

Flags:
`

// commandTimeout bounds one request to the node.
const commandTimeout = 20 * time.Second

type operatorOptions struct {
	config, dataDir, addr    string
	id, name, role, password string
	admin                    bool
}

func operatorFlags(out io.Writer) (*flag.FlagSet, *operatorOptions) {
	o := &operatorOptions{}
	fs := flag.NewFlagSet("operator", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.config, "config", "", "the node's YAML configuration `file` (default $VIGIL_CONFIG, else none)")
	fs.StringVar(&o.dataDir, "data-dir", "", "the node's data `directory` (default from the configuration)")
	fs.StringVar(&o.addr, "addr", "", "the node's HTTP `URL` (default from the configuration's http_addr)")
	fs.StringVar(&o.id, "id", "", "the operator's sign-in `name`")
	fs.StringVar(&o.name, "name", "", "the operator's full `name`, shown in the console")
	fs.StringVar(&o.role, "role", "", "operator, supervisor or admin (create: default operator)")
	fs.BoolVar(&o.admin, "admin", false, "the same as --role admin")
	fs.StringVar(&o.password, "password-file", "", "`file` whose first line is the password (- for standard input)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), operatorUsage)
		fs.PrintDefaults()
	}
	return fs, o
}

// OperatorUsage prints the vigil operator command's help.
func OperatorUsage(out io.Writer) {
	fs, _ := operatorFlags(out)
	fs.Usage()
}

// OperatorCommand runs vigil operator with args (after "operator").
func OperatorCommand(ctx context.Context, args []string, env CommandEnv) error {
	fs, o := operatorFlags(env.Stderr)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	usage := func(format string, a ...any) error {
		fmt.Fprintf(env.Stderr, "vigil operator: %s\n\n", fmt.Sprintf(format, a...))
		fs.Usage()
		return ErrUsage
	}
	if len(pos) != 1 {
		return usage("give one subcommand: create, password, unlock, disable, enable or list")
	}
	sub := pos[0]
	if o.admin {
		if o.role != "" && o.role != string(monitoring.RoleAdmin) {
			return usage("--admin and --role %s disagree", o.role)
		}
		o.role = string(monitoring.RoleAdmin)
	}
	cl, err := o.client(env)
	if err != nil {
		return err
	}
	switch sub {
	case "list":
		return cl.list(ctx, env.Stdout)
	case "create", "password", "unlock", "disable", "enable":
	default:
		return usage("unknown subcommand %q", sub)
	}
	if o.id == "" {
		return usage("%s needs --id", sub)
	}
	var req console.SetupOperatorRequest
	if sub == "create" {
		if o.name == "" {
			o.name = o.id
		}
		if o.role == "" {
			o.role = string(monitoring.RoleOperator)
		}
		req = console.SetupOperatorRequest{ID: o.id, Name: o.name, Role: monitoring.OperatorRole(o.role), Create: true}
	} else {
		cur, err := cl.get(ctx, o.id)
		if err != nil {
			return err
		}
		req = console.SetupOperatorRequest{ID: cur.ID, Name: cur.Name, Role: cur.Role, Disabled: cur.Disabled}
		if o.name != "" {
			req.Name = o.name
		}
		if o.role != "" {
			req.Role = monitoring.OperatorRole(o.role)
		}
	}
	switch sub {
	case "create", "password":
		if o.password == "" {
			return usage("%s needs --password-file", sub)
		}
		if req.Password, err = readPassword(o.password, env.Stdin); err != nil {
			return err
		}
		req.Unlock = true
	case "unlock":
		req.Unlock = true
	case "disable":
		req.Disabled = true
	case "enable":
		req.Disabled = false
	}
	op, err := cl.put(ctx, req)
	if err != nil {
		return err
	}
	state := "enabled"
	if op.Disabled {
		state = "disabled"
	}
	verb := map[string]string{"create": "created", "password": "has a new password and is unlocked",
		"unlock": "is unlocked", "disable": "is disabled", "enable": "is enabled"}[sub]
	fmt.Fprintf(env.Stdout, "operator %s (%s, %s, %s) %s\n", op.ID, op.Name, op.Role, state, verb)
	if sub == "create" {
		fmt.Fprintf(env.Stdout, "sign in at %s%s/\n", cl.base, console.Prefix)
	}
	return nil
}

// readPassword reads the first line of path ("-": in).
func readPassword(path string, in io.Reader) (string, error) {
	var r io.Reader = in
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return "", fmt.Errorf("cannot read the password: %w", err)
		}
		defer f.Close()
		r = f
	}
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("cannot read the password: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", fmt.Errorf("the password file %s is empty", path)
	}
	return pw, nil
}

// setupClient talks to the local operator API of one node.
type setupClient struct {
	base, token string
	http        *http.Client
}

func (o *operatorOptions) client(env CommandEnv) (*setupClient, error) {
	return newSetupClient(env, o.config, o.dataDir, o.addr)
}

// newSetupClient returns a client of the local setup API of the node
// configured by the file config (else $VIGIL_CONFIG), with the data
// directory dataDir and the URL addr when they are given.
func newSetupClient(env CommandEnv, config, dataDirFlag, addr string) (*setupClient, error) {
	path := config
	if path == "" && env.Getenv != nil {
		path = env.Getenv("VIGIL_CONFIG")
	}
	dataDir, httpAddr, err := env.LoadConfig(path)
	if err != nil {
		return nil, err
	}
	if dataDirFlag != "" {
		dataDir = dataDirFlag
	}
	base := addr
	if base == "" {
		base = nodeURL(dataDir) // where the node said it listens
	}
	if base == "" {
		base = localURL(httpAddr)
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	tok, err := auth.ReadSetupToken(dataDir)
	if err != nil {
		return nil, err
	}
	return &setupClient{base: strings.TrimRight(base, "/"), token: tok,
		http: &http.Client{Timeout: commandTimeout, Transport: &http.Transport{TLSClientConfig: nodeClientTLS(dataDir)}}}, nil
}

// nodeClientTLS is how a command on an appliance trusts the node's HTTPS:
// the system's roots (for a customer's certificate) and the cluster CA
// kept in the data directory.
func nodeClientTLS(dataDir string) *tls.Config {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if b, err := os.ReadFile(filepath.Join(dataDir, provisioning.TrustDir, "ca.crt")); err == nil {
		pool.AppendCertsFromPEM(b)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
}

// localURL is the URL that reaches a node listening on addr from the same
// machine: a wildcard address is reached on loopback.
// HTTPURLFile is the file, in the data directory, where a node writes the
// URL its API listens on when it opens; the commands run on the appliance
// read it (nodeURL).
const HTTPURLFile = "http-url"

// nodeURL returns the URL the node of dataDir wrote that its API listens
// on, or "" if it wrote none.
func nodeURL(dataDir string) string {
	if dataDir == "" {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(dataDir, HTTPURLFile))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func localURL(addr string) string {
	scheme := "http"
	if s, rest, ok := strings.Cut(addr, "://"); ok {
		scheme, addr = s, rest
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return scheme + "://" + addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

func (s *setupClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.base+console.Prefix+"/setup"+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the node at %s: %w", s.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("cannot read the reply from %s: %w", s.base, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct{ Error, Field string }
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			if e.Field != "" {
				return fmt.Errorf("%s (%s; HTTP %d)", e.Error, e.Field, resp.StatusCode)
			}
			return fmt.Errorf("%s (HTTP %d)", e.Error, resp.StatusCode)
		}
		return fmt.Errorf("HTTP %d from %s: %s", resp.StatusCode, s.base, strings.TrimSpace(string(b)))
	}
	return json.Unmarshal(b, out)
}

func (s *setupClient) operators(ctx context.Context) ([]monitoring.Operator, error) {
	var r console.SetupOperatorsResponse
	err := s.do(ctx, http.MethodGet, "/operators", nil, &r)
	return r.Operators, err
}

func (s *setupClient) get(ctx context.Context, id string) (*monitoring.Operator, error) {
	ops, err := s.operators(ctx)
	if err != nil {
		return nil, err
	}
	for i := range ops {
		if ops[i].ID == id {
			return &ops[i], nil
		}
	}
	return nil, fmt.Errorf("no operator %q (vigil operator list shows them)", id)
}

func (s *setupClient) put(ctx context.Context, req console.SetupOperatorRequest) (*monitoring.Operator, error) {
	var o monitoring.Operator
	return &o, s.do(ctx, http.MethodPost, "/operators", req, &o)
}

func (s *setupClient) list(ctx context.Context, w io.Writer) error {
	ops, err := s.operators(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tROLE\tSTATE\tLAST SIGN-IN")
	now := time.Now()
	for _, o := range ops {
		state := "enabled"
		switch {
		case o.Disabled:
			state = "disabled"
		case o.BackedOff(now):
			state = "slowed until " + o.BackoffUntil().Local().Format("15:04:05")
		}
		last := "never"
		if !o.LastLoginAt.IsZero() {
			last = o.LastLoginAt.Local().Format("2006-01-02 15:04")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", o.ID, o.Name, o.Role, state, last)
	}
	return tw.Flush()
}

const tokenUsage = `Usage:
  vigil token create --name NAME [--role ROLE]
  vigil token list
  vigil token disable ID
  vigil token join [--token-uses N] [--token-ttl 1h] [serve's flags]

join makes a join token for new appliances (docs/install.md), from the CA
key in this appliance's data directory; it needs no running node. The
others below are the REST API's.

Manages the REST API's tokens (docs/api.md) through the node running on
this appliance, as vigil operator does: run it on the appliance, as the user
the node runs as. Tokens are replicated: one node is enough for the whole
cluster.

create makes a token and prints it, once: "vgt_<id>_<secret>". Only a hash of
the secret is kept, so it cannot be shown again; keep it where the tool that
uses it reads it, and send it as "Authorization: Bearer <token>". NAME is
unique among tokens (the audit log records "token:NAME"): letters, digits and
punctuation, no spaces or '/'. ROLE is operator (the default), supervisor or
admin, as for console accounts. disable stops a token for good, on every
node; list shows the tokens, never their secrets.

Flags:
`

type tokenOptions struct {
	config, dataDir, addr, name, role string
}

func tokenFlags(out io.Writer) (*flag.FlagSet, *tokenOptions) {
	o := &tokenOptions{}
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.config, "config", "", "the node's YAML configuration `file` (default $VIGIL_CONFIG, else none)")
	fs.StringVar(&o.dataDir, "data-dir", "", "the node's data `directory` (default from the configuration)")
	fs.StringVar(&o.addr, "addr", "", "the node's HTTP `URL` (default from the configuration's http_addr)")
	fs.StringVar(&o.name, "name", "", "the token's `name` (create)")
	fs.StringVar(&o.role, "role", "", "operator, supervisor or admin (create: default operator)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), tokenUsage)
		fs.PrintDefaults()
	}
	return fs, o
}

// TokenUsage prints the vigil token command's help.
func TokenUsage(out io.Writer) {
	fs, _ := tokenFlags(out)
	fs.Usage()
}

// TokenCommand runs vigil token with args (after "token").
func TokenCommand(ctx context.Context, args []string, env CommandEnv) error {
	fs, o := tokenFlags(env.Stderr)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	usage := func(format string, a ...any) error {
		fmt.Fprintf(env.Stderr, "vigil token: %s\n\n", fmt.Sprintf(format, a...))
		fs.Usage()
		return ErrUsage
	}
	if len(pos) == 0 {
		return usage("give a subcommand: create, list or disable")
	}
	switch {
	case pos[0] == "create" && len(pos) == 1:
		if o.name == "" {
			return usage("create needs --name")
		}
		if o.role == "" {
			o.role = string(monitoring.RoleOperator)
		}
		if !monitoring.OperatorRole(o.role).Valid() {
			return usage("--role %q: want one of %v", o.role, monitoring.OperatorRoles)
		}
	case pos[0] == "list" && len(pos) == 1:
	case pos[0] == "disable" && len(pos) == 2:
	case pos[0] == "disable":
		return usage("disable needs the token's ID (vigil token list shows it): vigil token disable ID")
	case pos[0] == "create", pos[0] == "list":
		return usage("unexpected argument %q", pos[1])
	default:
		return usage("unknown subcommand %q", pos[0])
	}
	if pos[0] != "create" && (o.name != "" || o.role != "") {
		return usage("--name and --role are for create")
	}
	cl, err := newSetupClient(env, o.config, o.dataDir, o.addr)
	if err != nil {
		return err
	}
	switch pos[0] {
	case "create":
		var t monitoring.NewAPIToken
		if err := cl.do(ctx, http.MethodPost, "/tokens", console.SetupTokenRequest{Name: o.name, Role: monitoring.OperatorRole(o.role)}, &t); err != nil {
			return err
		}
		if t.Token == nil || t.Secret == "" {
			return fmt.Errorf("the node at %s answered without the token", cl.base)
		}
		fmt.Fprintf(env.Stderr, "API token %s (%s, %s) made; it is shown this once:\n", t.Token.ID, t.Token.Name, t.Token.Role)
		fmt.Fprintln(env.Stdout, t.Secret)
		return nil
	case "disable":
		var t monitoring.APIToken
		if err := cl.do(ctx, http.MethodPost, "/tokens/"+url.PathEscape(pos[1])+"/disable", struct{}{}, &t); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "API token %s (%s, %s) is disabled\n", t.ID, t.Name, t.Role)
		return nil
	}
	var r console.SetupTokensResponse
	if err := cl.do(ctx, http.MethodGet, "/tokens", nil, &r); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tROLE\tSTATE\tCREATED\tBY")
	for _, t := range r.Tokens {
		state := "enabled"
		if t.Disabled {
			state = "disabled " + t.DisabledAt.Local().Format("2006-01-02 15:04") + " by " + t.DisabledBy
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Role, state, t.CreatedAt.Local().Format("2006-01-02 15:04"), t.CreatedBy)
	}
	return tw.Flush()
}
