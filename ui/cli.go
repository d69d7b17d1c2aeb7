package ui

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// ErrUsage marks a command-line mistake whose message has been printed.
var ErrUsage = errors.New("usage error")

// CommandEnv is what the vigil operator command needs from the vigil
// command line.
type CommandEnv struct {
	Stdout, Stderr io.Writer
	Stdin          io.Reader
	// LoadConfig returns the data directory and HTTP address of the node
	// configured by the file at path (none when empty), with the VIGIL_
	// environment applied.
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
	var pos []string
	for { // flags may come before or after the subcommand
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return ErrUsage
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
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
	var req SetupOperatorRequest
	if sub == "create" {
		if o.name == "" {
			o.name = o.id
		}
		if o.role == "" {
			o.role = string(monitoring.RoleOperator)
		}
		req = SetupOperatorRequest{ID: o.id, Name: o.name, Role: monitoring.OperatorRole(o.role), Create: true}
	} else {
		cur, err := cl.get(ctx, o.id)
		if err != nil {
			return err
		}
		req = SetupOperatorRequest{ID: cur.ID, Name: cur.Name, Role: cur.Role, Disabled: cur.Disabled}
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
		fmt.Fprintf(env.Stdout, "sign in at %s%s/\n", cl.base, Prefix)
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
	path := o.config
	if path == "" && env.Getenv != nil {
		path = env.Getenv("VIGIL_CONFIG")
	}
	dataDir, httpAddr, err := env.LoadConfig(path)
	if err != nil {
		return nil, err
	}
	if o.dataDir != "" {
		dataDir = o.dataDir
	}
	base := o.addr
	if base == "" {
		base = localURL(httpAddr)
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	tokPath := filepath.Join(dataDir, SetupTokenFileName)
	b, err := os.ReadFile(tokPath)
	if err != nil {
		return nil, fmt.Errorf("cannot read the node's setup token (is the node running with data directory %s, and are you the user it runs as?): %w", dataDir, err)
	}
	return &setupClient{base: strings.TrimRight(base, "/"), token: strings.TrimSpace(string(b)), http: &http.Client{Timeout: commandTimeout}}, nil
}

// localURL is the URL that reaches a node listening on addr from the same
// machine: a wildcard address is reached on loopback.
func localURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

func (s *setupClient) do(ctx context.Context, method string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.base+Prefix+"/setup/operators", rd)
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
	var r SetupOperatorsResponse
	err := s.do(ctx, http.MethodGet, nil, &r)
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

func (s *setupClient) put(ctx context.Context, req SetupOperatorRequest) (*monitoring.Operator, error) {
	var o monitoring.Operator
	return &o, s.do(ctx, http.MethodPost, req, &o)
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
		case o.Locked(now):
			state = "locked until " + o.LockedUntil.Local().Format("15:04")
		}
		last := "never"
		if !o.LastLoginAt.IsZero() {
			last = o.LastLoginAt.Local().Format("2006-01-02 15:04")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", o.ID, o.Name, o.Role, state, last)
	}
	return tw.Flush()
}
