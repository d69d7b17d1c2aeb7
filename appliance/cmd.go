package appliance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigilarc/vigil/appliance/devcluster"
	"github.com/vigilarc/vigil/appliance/sim/simcmd"
	"github.com/vigilarc/vigil/cluster"
	"github.com/vigilarc/vigil/ui/api"
	"github.com/vigilarc/vigil/ui/auth"
)

// Version is the release version, set at build time with
// -ldflags "-X github.com/vigilarc/vigil/appliance.Version=v1.2.3".
var Version = "dev"

// DefaultAPIURL is where the client commands (status, cluster) find a node.
const DefaultAPIURL = "http://" + DefaultHTTPAddr

// DefaultClientTimeout bounds one client command's HTTP request. It is
// longer than the default apply timeout, so the server answers first.
const DefaultClientTimeout = 15 * time.Second

// Exit codes of the vigil command.
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and failed
	exitUsage   = 2 // the command line was wrong
)

const mainUsage = `vigil: the Vigil lone-worker alarm receiving appliance.

Usage:
  vigil <command> [arguments]

Commands:
  init         set up the first appliance of a new cluster (its CA) and print a join token
  join         join this new appliance to a cluster with a join token
  serve        run this appliance's node
  status       show a node's view of the cluster
  cluster      change cluster membership (join, remove)
  replace-node remove a failed appliance and print a join token for its replacement
  operator     manage console operator accounts (the first admin at set-up)
  backup       write the cluster's state to an encrypted file (backup inspect: show what one holds)
  restore      install a backup in a new appliance's data directory
  token        manage the REST API's tokens (create, list, disable), or make a join token (token join)
  devcluster   run a three-node cluster on this machine for development
  sim          simulate devices against the brokers, for demos and load
  version      print the version
  help         show help for a command

Run 'vigil help <command>' or 'vigil <command> -h' for a command's flags.
`

// Main runs the vigil command line with args (as in os.Args) and returns the
// process exit code. ctx ends when the process is asked to stop.
func Main(ctx context.Context, args []string) int {
	c := &cli{stdout: os.Stdout, stderr: os.Stderr, lookupEnv: os.LookupEnv}
	return c.run(ctx, args)
}

// cli is the command line, with its outputs and environment injected so
// tests can run it.
type cli struct {
	stdout, stderr io.Writer
	lookupEnv      func(string) (string, bool)
}

func (c *cli) run(ctx context.Context, args []string) int {
	if len(args) < 2 {
		fmt.Fprint(c.stderr, mainUsage)
		return exitUsage
	}
	cmd, rest := args[1], args[2:]
	var err error
	switch cmd {
	case "serve":
		err = c.serve(ctx, rest)
	case "status":
		err = c.status(ctx, rest)
	case "cluster":
		err = c.clusterCmd(ctx, rest)
	case "operator":
		err = OperatorCommand(ctx, rest, c.operatorEnv())
	case "init":
		err = c.initCmd(ctx, rest)
	case "join":
		err = c.joinCmd(ctx, rest)
	case "replace-node":
		err = c.replaceNodeCmd(ctx, rest)
	case "backup":
		err = c.backupCmd(ctx, rest)
	case "restore":
		err = c.restoreCmd(ctx, rest)
	case "token":
		if len(rest) > 0 && rest[0] == "join" {
			err = c.trustTokenCmd(rest[1:])
			break
		}
		err = TokenCommand(ctx, rest, c.operatorEnv())
	case "devcluster":
		err = devcluster.Command(ctx, rest, c.devclusterEnv())
	case "sim":
		err = simcmd.Command(ctx, rest, c.simEnv())
	case "version", "--version", "-version":
		fmt.Fprintln(c.stdout, versionString())
	case "help", "-h", "-help", "--help":
		err = c.help(rest)
	default:
		fmt.Fprintf(c.stderr, "vigil: unknown command %q\n\n%s", cmd, mainUsage)
		return exitUsage
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, ErrUsage):
		return exitUsage
	default:
		fmt.Fprintf(c.stderr, "vigil %s: %v\n", cmd, err)
		return exitFailure
	}
}

func (c *cli) help(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(c.stdout, mainUsage)
		return nil
	}
	var fs *flag.FlagSet
	switch args[0] {
	case "serve":
		fs, _ = serveFlags(c.stdout)
	case "status":
		fs, _, _, _ = statusFlags(c.stdout, c.lookupEnv)
	case "cluster":
		fs, _, _ = clusterFlags(c.stdout, "cluster", c.lookupEnv)
	case "operator":
		OperatorUsage(c.stdout)
		return nil
	case "token":
		TokenUsage(c.stdout)
		return nil
	case "devcluster":
		devcluster.Usage(c.stdout, c.devclusterEnv())
		return nil
	case "sim":
		simcmd.Usage(c.stdout, c.simEnv())
		return nil
	case "backup", "restore":
		h := &cli{stdout: c.stdout, stderr: c.stdout, lookupEnv: c.lookupEnv}
		var err error
		if args[0] == "backup" {
			err = h.backupCmd(context.Background(), []string{"-h"})
		} else {
			err = h.restoreCmd(context.Background(), []string{"-h"})
		}
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	case "init", "join", "replace-node":
		// Their flags are made by the command itself: ask it for -h, on
		// stdout.
		h := &cli{stdout: c.stdout, stderr: c.stdout, lookupEnv: c.lookupEnv}
		var err error
		switch args[0] {
		case "init":
			err = h.initCmd(context.Background(), []string{"-h"})
		case "join":
			err = h.joinCmd(context.Background(), []string{"-h"})
		default:
			err = h.replaceNodeCmd(context.Background(), []string{"-h"})
		}
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	case "version":
		fmt.Fprintln(c.stdout, "Usage: vigil version\n\nPrints the version, the commit it was built from and the Go version.")
		return nil
	default:
		fmt.Fprintf(c.stderr, "vigil help: unknown command %q\n\n%s", args[0], mainUsage)
		return ErrUsage
	}
	fs.Usage()
	return nil
}

// parseArgs parses flags that may come before, between or after the
// positional arguments, and returns the positional ones.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, ErrUsage // flag has printed the error and the usage
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func usageErr(fs *flag.FlagSet, format string, a ...any) error {
	fmt.Fprintf(fs.Output(), "vigil %s: %s\n\n", fs.Name(), fmt.Sprintf(format, a...))
	fs.Usage()
	return ErrUsage
}

// ---- serve ----

// serveOptions are the flags of vigil serve.
type serveOptions struct {
	config, dataDir, nodeID, nodeName, clusterAddr, advertiseAddr, httpAddr, httpTLS, httpCert, httpKey, logLevel string
	logFormat, metricsAddr                                                                                        string
	mqttAddr, mqttWSAddr, mqttTLSAddr, mqttWSSAddr, mqttCert, mqttKey                                             string
	bootstrap                                                                                                     bool
	bootstrapExpect, join                                                                                         string
}

func serveFlags(out io.Writer) (*flag.FlagSet, *serveOptions) {
	o := &serveOptions{}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.config, "config", "", "YAML configuration `file` (default $VIGIL_CONFIG, else none)")
	fs.StringVar(&o.dataDir, "data-dir", "", "data `directory` (data_dir; default "+DefaultDataDir+")")
	fs.StringVar(&o.nodeName, "node-name", "", "readable `name` of the node on the cluster page and the LAN (node_name; default the host name)")
	fs.StringVar(&o.nodeID, "node-id", "", "node `ID` for a new data directory (node_id; default a new UUID)")
	fs.StringVar(&o.clusterAddr, "cluster-addr", "", "cluster port `host:port` to listen on (cluster.bind_addr; default "+DefaultClusterAddr+")")
	fs.StringVar(&o.advertiseAddr, "advertise-addr", "", "cluster `host:port` that peers dial (cluster.advertise_addr; default the cluster address)")
	fs.StringVar(&o.httpAddr, "http-addr", "", "HTTP API `host:port` (http_addr; default "+DefaultHTTPAddr+")")
	fs.StringVar(&o.httpTLS, "http-tls", "", "HTTPS on http_addr: auto (outside loopback), on or off (http_tls; default auto)")
	fs.StringVar(&o.httpCert, "http-tls-cert", "", "PEM certificate `file` from the customer's CA for the console and API (http_tls_cert_file)")
	fs.StringVar(&o.httpKey, "http-tls-key", "", "PEM key `file` of --http-tls-cert (http_tls_key_file)")
	fs.StringVar(&o.mqttAddr, "mqtt-addr", "", "plain MQTT `host:port` for devices (broker.tcp_addr; default none: use --mqtt-tls-addr on a network)")
	fs.StringVar(&o.mqttWSAddr, "mqtt-ws-addr", "", "plain MQTT over WebSocket `host:port` (broker.ws_addr; default none)")
	fs.StringVar(&o.mqttTLSAddr, "mqtt-tls-addr", "", "MQTT over TLS `host:port`, such as :8883 (broker.tls_addr; default none)")
	fs.StringVar(&o.mqttWSSAddr, "mqtt-wss-addr", "", "MQTT over secure WebSocket `host:port` (broker.wss_addr; default none)")
	fs.StringVar(&o.mqttCert, "mqtt-tls-cert", "", "PEM certificate `file` of the MQTT TLS listeners (broker.tls_cert_file)")
	fs.StringVar(&o.mqttKey, "mqtt-tls-key", "", "PEM key `file` of the MQTT TLS listeners (broker.tls_key_file)")
	fs.StringVar(&o.logLevel, "log-level", "", "debug, info, warn or error (log_level; default "+DefaultLogLevel+")")
	fs.StringVar(&o.logFormat, "log-format", "", "text or json (log_format; default "+DefaultLogFormat+")")
	fs.StringVar(&o.metricsAddr, "metrics-addr", "", "`host:port` serving /metrics, /healthz and /readyz without authentication (metrics_addr; default none)")
	fs.BoolVar(&o.bootstrap, "bootstrap", false, "start a new single-node cluster if the data directory is new (cluster.bootstrap)")
	fs.StringVar(&o.bootstrapExpect, "bootstrap-expect", "", "comma-separated cluster `addresses` of all initial voters, this node's included (cluster.bootstrap_expect)")
	fs.StringVar(&o.join, "join", "", "comma-separated cluster `addresses` of members to join through (cluster.join)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: vigil serve [flags]

Runs this appliance's node until SIGINT or SIGTERM, then stops it cleanly
(a second signal stops it at once).

Settings come from, in increasing precedence: built-in defaults (a single
appliance with data in %s, cluster port %s, API on %s), the
YAML file given with --config, VIGIL_ environment variables (cluster.bind_addr
is VIGIL_CLUSTER_BIND_ADDR; lists are comma-separated), then these flags.
--bootstrap, --bootstrap-expect and --join are one choice: the layer that sets
any of them replaces the others. See docs/install.md for every setting.

The HTTP API asks for an API token or a console sign-in on every route
(docs/api.md); vigil token makes tokens.

Flags:
`, DefaultDataDir, DefaultClusterAddr, DefaultHTTPAddr)
		fs.PrintDefaults()
	}
	return fs, o
}

// loadServeConfig returns the configuration of vigil serve: defaults, then
// the file, then the environment, then the flags in args. It validates the
// result.
func loadServeConfig(args []string, lookupEnv func(string) (string, bool), out io.Writer) (Config, error) {
	fs, o := serveFlags(out)
	cfg, pos, err := parseConfigFlags(fs, o, args, lookupEnv)
	if err == nil && len(pos) > 0 {
		return Config{}, usageErr(fs, "unexpected argument %q", pos[0])
	}
	return cfg, err
}

// parseConfigFlags parses args with fs (serveFlags' flags, and any a
// command adds) and returns the configuration they give, validated, and
// the positional arguments.
func parseConfigFlags(fs *flag.FlagSet, o *serveOptions, args []string, lookupEnv func(string) (string, bool)) (Config, []string, error) {
	pos, err := parseArgs(fs, args)
	if err != nil {
		return Config{}, nil, err
	}
	cfg, err := o.build(fs, lookupEnv)
	return cfg, pos, err
}

// build builds the configuration from the parsed flags.
func (o *serveOptions) build(fs *flag.FlagSet, lookupEnv func(string) (string, bool)) (Config, error) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	path := o.config
	if !set["config"] {
		path, _ = lookupEnv(EnvPrefix + "CONFIG")
	}
	cfg, err := LoadConfig(path, lookupEnv)
	if err != nil {
		return Config{}, err
	}
	if set["bootstrap"] || set["bootstrap-expect"] || set["join"] {
		cfg.Cluster.resetMode()
	}
	for name, dst := range map[string]*string{
		"data-dir":       &cfg.DataDir,
		"node-id":        &cfg.NodeID,
		"node-name":      &cfg.NodeName,
		"cluster-addr":   &cfg.Cluster.BindAddr,
		"advertise-addr": &cfg.Cluster.AdvertiseAddr,
		"http-addr":      &cfg.HTTPAddr,
		"http-tls":       &cfg.HTTPTLS,
		"http-tls-cert":  &cfg.HTTPTLSCertFile,
		"http-tls-key":   &cfg.HTTPTLSKeyFile,
		"log-level":      &cfg.LogLevel,
		"log-format":     &cfg.LogFormat,
		"metrics-addr":   &cfg.MetricsAddr,
		"mqtt-addr":      &cfg.Broker.TCPAddr,
		"mqtt-ws-addr":   &cfg.Broker.WSAddr,
		"mqtt-tls-addr":  &cfg.Broker.TLSAddr,
		"mqtt-wss-addr":  &cfg.Broker.WSSAddr,
		"mqtt-tls-cert":  &cfg.Broker.TLSCertFile,
		"mqtt-tls-key":   &cfg.Broker.TLSKeyFile,
	} {
		if set[name] {
			*dst = fs.Lookup(name).Value.String()
		}
	}
	if set["bootstrap"] {
		b := o.bootstrap
		cfg.Cluster.Bootstrap = &b
	}
	if set["bootstrap-expect"] {
		cfg.Cluster.BootstrapExpect = splitList(o.bootstrapExpect)
	}
	if set["join"] {
		cfg.Cluster.Join = splitList(o.join)
	}
	return cfg, cfg.Validate()
}

func (c *cli) serve(ctx context.Context, args []string) error {
	cfg, err := loadServeConfig(args, c.lookupEnv, c.stderr)
	if err != nil {
		return err
	}
	cfg.Logger = newFormatLogger(c.stderr, cfg.LogLevel, cfg.LogFormat, journalStream(c.lookupEnv, c.stderr))
	if cfg.Cluster.JoinToken != "" {
		// cluster.join_token: a new appliance joins on its first start, as
		// vigil join would; afterwards the token is not needed.
		if t, err := loadTrust(cfg.DataDir); err != nil {
			return err
		} else if t == nil {
			if err := c.joinWithToken(ctx, cfg, cfg.Cluster.JoinToken, nil); err != nil {
				return fmt.Errorf("cluster.join_token: %w", err)
			}
		}
	}
	n, err := New(cfg)
	if err != nil {
		return err
	}
	if err := n.Open(ctx); err != nil {
		return err
	}
	c.announce(ctx, n)
	<-ctx.Done()
	cfg.Logger.Info("stopping: signal received")
	return n.Close()
}

// announceWait bounds how long serve waits, before it says what to do
// next, for the node to know a leader and hold what it has committed.
const announceWait = 10 * time.Second

// announce tells whoever started the node where its console is and, on a
// new installation, the exact command that makes the first administrator.
// A node that cannot read the cluster's accounts in time (it is joining,
// or has no quorum) says only where the console is.
func (c *cli) announce(ctx context.Context, n *Node) {
	fmt.Fprintf(c.stdout, "vigil: node %s is up; the operator console is at %s/ui/\n", n.Cluster().ID(), n.ConsoleURL())
	wctx, cancel := context.WithTimeout(ctx, announceWait)
	defer cancel()
	if _, err := n.Cluster().WaitForLeader(wctx); err != nil {
		return
	}
	if err := n.Cluster().WaitApplied(wctx); err != nil {
		return
	}
	if ops, err := n.Service().Operators(); err != nil || len(ops) > 0 {
		return
	}
	fmt.Fprintf(c.stdout, "vigil: no operator account exists yet. Make the first administrator on this appliance, as this user:\n"+
		"  vigil operator create --admin --id ID --name \"FULL NAME\" --password-file - --data-dir %s --addr %s\n",
		n.DataDir(), localURL(n.httpScheme()+"://"+n.HTTPAddr()))
}

// ---- client commands ----

// apiClient talks to one node's HTTP API.
type apiClient struct {
	base  string
	token string // sent as Authorization: Bearer; none when empty
	// tokenNote says where the token came from, or why there is none, for
	// the message of a 401.
	tokenNote string
	http      *http.Client
}

// newAPIClient accepts "http://host:port" or plain "host:port". Set token
// before use to authorise the requests.
func newAPIClient(addr string, timeout time.Duration) (*apiClient, error) {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("--addr %q is not a URL such as %s", addr, DefaultAPIURL)
	}
	return &apiClient{base: strings.TrimRight(u.String(), "/"), http: &http.Client{Timeout: timeout}}, nil
}

// do sends a request and returns the body of a 2xx reply, or the server's
// error message.
func (a *apiClient) do(ctx context.Context, method, path string, body any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach %s: %w", a.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("cannot read reply from %s: %w", a.base, err)
	}
	if resp.StatusCode/100 != 2 {
		msg := strings.TrimSpace(string(b))
		var e api.ErrorResponse
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			return nil, fmt.Errorf("%s (HTTP %d from %s; the token: %s). Give an API token with --token or $%sAPI_TOKEN "+
				"(vigil token create), or run this on the node, as the user it runs as, with its --config or --data-dir",
				msg, resp.StatusCode, a.base, a.tokenNote, EnvPrefix)
		}
		return nil, fmt.Errorf("%s (HTTP %d from %s)", msg, resp.StatusCode, a.base)
	}
	return b, nil
}

// authOptions are the flags of a client command that say how it
// authorises itself.
type authOptions struct {
	token, config, dataDir string
}

// addAuthFlags adds --token, --config and --data-dir to fs.
func addAuthFlags(fs *flag.FlagSet) *authOptions {
	o := &authOptions{}
	fs.StringVar(&o.token, "token", "", "API `token` (default $"+EnvPrefix+"API_TOKEN, else the setup token of the node "+
		"whose data directory --data-dir or the configuration names)")
	fs.StringVar(&o.config, "config", "", "the node's YAML configuration `file`, to find its data directory (default $"+EnvPrefix+"CONFIG, else none)")
	fs.StringVar(&o.dataDir, "data-dir", "", "the node's data `directory`, whose setup token authorises the command on that node (default from the configuration)")
	return o
}

// authorise sets the token of client: --token, else $VIGIL_API_TOKEN, else
// the setup token of the node on this machine, read from its data
// directory (--data-dir, else the configuration's data_dir). That token
// works only on that node, so with --addr naming another node give a
// token. Without any, the requests go without one, and the node's 401 says
// so.
func (c *cli) authorise(client *apiClient, o *authOptions) error {
	// HTTPS: trust the cluster CA of the local node's data directory.
	tlsDir := o.dataDir
	if tlsDir == "" {
		path := o.config
		if path == "" {
			path, _ = c.lookupEnv(EnvPrefix + "CONFIG")
		}
		if cfg, err := LoadConfig(path, c.lookupEnv); err == nil {
			tlsDir = cfg.DataDir
		}
	}
	client.http.Transport = &http.Transport{TLSClientConfig: nodeClientTLS(tlsDir)}
	if o.token != "" {
		client.token, client.tokenNote = o.token, "from --token"
		return nil
	}
	if v, ok := c.lookupEnv(EnvPrefix + "API_TOKEN"); ok && strings.TrimSpace(v) != "" {
		client.token, client.tokenNote = strings.TrimSpace(v), "from $"+EnvPrefix+"API_TOKEN"
		return nil
	}
	dataDir := o.dataDir
	if dataDir == "" {
		path := o.config
		if path == "" {
			path, _ = c.lookupEnv(EnvPrefix + "CONFIG")
		}
		cfg, err := LoadConfig(path, c.lookupEnv)
		if err != nil {
			return err
		}
		dataDir = cfg.DataDir
	}
	tok, err := auth.ReadSetupToken(dataDir)
	if err != nil {
		client.tokenNote = "none given, and " + err.Error()
		return nil
	}
	client.token, client.tokenNote = tok, "the setup token of the node with data directory "+dataDir+", which works only on that node"
	return nil
}

// addrFlag adds --addr, defaulting to $VIGIL_ADDR or DefaultAPIURL.
func addrFlag(fs *flag.FlagSet, lookupEnv func(string) (string, bool)) *string {
	def := DefaultAPIURL
	if v, ok := lookupEnv(EnvPrefix + "ADDR"); ok && v != "" {
		def = v
	}
	return fs.String("addr", def, "`URL` of any node's HTTP API (default $VIGIL_ADDR, else the API of the node of --data-dir or --config, else "+DefaultAPIURL+")")
}

// clientAuthHelp is the part of a client command's help about its token.
const clientAuthHelp = `The API needs a token (docs/api.md): --token, else $VIGIL_API_TOKEN, else
the node's own setup token, which the command reads from the node's data
directory (--data-dir, or data_dir of --config or $VIGIL_CONFIG) when it runs
on the appliance as the user the node runs as. The setup token works only on
its own node; for another node give an API token (vigil token create).
`

func statusFlags(out io.Writer, lookupEnv func(string) (string, bool)) (*flag.FlagSet, *string, *bool, *authOptions) {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(out)
	addr := addrFlag(fs, lookupEnv)
	asJSON := fs.Bool("json", false, "print the node's status as raw JSON")
	auth := addAuthFlags(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: vigil status [--addr URL] [--json] [--token TOKEN | --config FILE | --data-dir DIR]

Shows how one node sees the cluster: its state, the leader, the term, the
commit and applied indexes, and each member with its address, state, applied
index and when this node last heard from it. Ask another node to see its view.

`+clientAuthHelp+`
Flags:
`)
		fs.PrintDefaults()
	}
	return fs, addr, asJSON, auth
}

// localAddr returns the API a client command talks to: --addr or
// $VIGIL_ADDR when given; else the URL the node of the command's data
// directory (--data-dir, or data_dir of --config or $VIGIL_CONFIG) wrote
// that it listens on, or that configuration's http_addr; else addr, the
// default.
func (c *cli) localAddr(fs *flag.FlagSet, addr string, o *authOptions) string {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "addr" })
	if v, env := c.lookupEnv(EnvPrefix + "ADDR"); given || env && v != "" {
		return addr
	}
	path := o.config
	if path == "" {
		path, _ = c.lookupEnv(EnvPrefix + "CONFIG")
	}
	var cfg *Config
	if path != "" {
		if cf, err := LoadConfig(path, c.lookupEnv); err == nil {
			cfg = &cf
		}
	}
	dataDir := o.dataDir
	if dataDir == "" && cfg != nil {
		dataDir = cfg.DataDir
	}
	if u := nodeURL(dataDir); u != "" {
		return u
	}
	if cfg != nil {
		scheme := "http"
		if cfg.httpsOn() {
			scheme = "https"
		}
		return localURL(scheme + "://" + cfg.HTTPAddr)
	}
	return addr
}

func (c *cli) status(ctx context.Context, args []string) error {
	fs, addr, asJSON, auth := statusFlags(c.stderr, c.lookupEnv)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr(fs, "unexpected argument %q", pos[0])
	}
	client, err := newAPIClient(c.localAddr(fs, *addr, auth), DefaultClientTimeout)
	if err != nil {
		return err
	}
	if err := c.authorise(client, auth); err != nil {
		return err
	}
	b, err := client.do(ctx, http.MethodGet, "/api/v1/cluster/status", nil)
	if err != nil {
		return err
	}
	if *asJSON {
		c.stdout.Write(b)
		if !bytes.HasSuffix(b, []byte("\n")) {
			fmt.Fprintln(c.stdout)
		}
		return nil
	}
	var st cluster.Status
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("cannot decode status from %s: %w", client.base, err)
	}
	writeStatus(c.stdout, st)
	return nil
}

// writeStatus prints st as a human-readable table.
func writeStatus(w io.Writer, st cluster.Status) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Node:\t%s (%s) at %s\n", st.NodeID, st.State, st.Addr)
	if st.LeaderID != "" {
		fmt.Fprintf(tw, "Leader:\t%s at %s\n", st.LeaderID, st.LeaderAddr)
	} else {
		fmt.Fprintf(tw, "Leader:\tnone: no quorum, or an election is under way\n")
	}
	fmt.Fprintf(tw, "Term:\t%d\n", st.Term)
	fmt.Fprintf(tw, "Commit index:\t%d\n", st.CommitIndex)
	fmt.Fprintf(tw, "Applied index:\t%d\n", st.AppliedIndex)
	fmt.Fprintf(tw, "Last log index:\t%d\n", st.LastLogIndex)
	fmt.Fprintf(tw, "Last snapshot:\t%d\n", st.LastSnapshot)
	if st.State != "Leader" && st.LastContact != "" {
		fmt.Fprintf(tw, "Leader contact:\t%s\n", st.LastContact)
	}
	tw.Flush()

	fmt.Fprintf(w, "\nMembers (%d):\n", len(st.Members))
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tADDRESS\tROLE\tSTATE\tAPPLIED\tLAST CONTACT")
	for _, m := range st.Members {
		role := "voter"
		if !m.Voter {
			role = "nonvoter"
		}
		if m.Leader {
			role += ", leader"
		}
		state, applied := m.State, fmt.Sprint(m.AppliedIndex)
		if state == "" {
			state, applied = "?", "?"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, m.Addr, role, state, applied, lastContact(m))
	}
	tw.Flush()
}

func lastContact(m cluster.Member) string {
	switch {
	case m.Self:
		return "this node"
	case m.LastContactMS < 0:
		return "never (unreachable)"
	}
	ago := (time.Duration(m.LastContactMS) * time.Millisecond).String() + " ago"
	if !m.Reachable {
		return ago + " (unreachable)"
	}
	return ago
}

func clusterFlags(out io.Writer, name string, lookupEnv func(string) (string, bool)) (*flag.FlagSet, *string, *authOptions) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	addr := addrFlag(fs, lookupEnv)
	auth := addAuthFlags(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage:
  vigil cluster join ID ADDR [--addr URL]   add node ID, whose cluster address is ADDR, as a voter
  vigil cluster remove ID [--addr URL]      remove node ID from the cluster

Any node takes the request and passes it to the leader. A node is never
removed automatically: to replace a failed appliance, remove the old ID,
then join the new node (or start it with cluster.join). vigil status shows
the IDs. Both need an admin: the node's setup token or an admin API token.

`+clientAuthHelp+`
Flags:
`)
		fs.PrintDefaults()
	}
	return fs, addr, auth
}

func (c *cli) clusterCmd(ctx context.Context, args []string) error {
	fs, addr, auth := clusterFlags(c.stderr, "cluster", c.lookupEnv)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageErr(fs, "missing subcommand: join or remove")
	}
	client, err := newAPIClient(c.localAddr(fs, *addr, auth), DefaultClientTimeout)
	if err != nil {
		return err
	}
	if err := c.authorise(client, auth); err != nil {
		return err
	}
	switch pos[0] {
	case "join":
		if len(pos) != 3 {
			return usageErr(fs, "join needs the node ID and its cluster address: vigil cluster join ID ADDR")
		}
		req := api.MemberRequest{ID: pos[1], Addr: pos[2]}
		if _, err := client.do(ctx, http.MethodPost, "/api/v1/cluster/members", req); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "node %s at %s is a voter\n", req.ID, req.Addr)
	case "remove":
		if len(pos) != 2 {
			return usageErr(fs, "remove needs exactly one node ID: vigil cluster remove ID")
		}
		if _, err := client.do(ctx, http.MethodDelete, "/api/v1/cluster/members/"+url.PathEscape(pos[1]), nil); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "node %s removed\n", pos[1])
	default:
		return usageErr(fs, "unknown subcommand %q: want join or remove", pos[0])
	}
	return nil
}

// devclusterEnv is what vigil devcluster needs from the command line.
func (c *cli) devclusterEnv() devcluster.Env {
	return devcluster.Env{
		Stdout: c.stdout, Stderr: c.stderr, Stdin: os.Stdin,
		ParseArgs: parseArgs, UsageError: usageErr, NewLogger: newLogger,
		CheckLogLevel: func(level string) error {
			_, err := parseLevel(level)
			return err
		},
		DefaultLogLevel: DefaultLogLevel, EnvPrefix: EnvPrefix,
	}
}

// simEnv is what vigil sim needs from the command line.
func (c *cli) simEnv() simcmd.Env {
	return simcmd.Env{
		Stdout: c.stdout, Stderr: c.stderr, LookupEnv: c.lookupEnv,
		ParseArgs: parseArgs, UsageError: usageErr, SplitList: splitList, NewLogger: newLogger,
		DefaultAPIURL: DefaultAPIURL,
	}
}

// operatorEnv is what vigil operator and vigil token (cli_accounts.go) need: the
// outputs, and the node's data directory and HTTP address from its
// configuration.
func (c *cli) operatorEnv() CommandEnv {
	return CommandEnv{
		Stdout: c.stdout, Stderr: c.stderr, Stdin: os.Stdin,
		Getenv: func(k string) string { v, _ := c.lookupEnv(k); return v },
		LoadConfig: func(path string) (string, string, error) {
			cfg, err := LoadConfig(path, c.lookupEnv)
			if err == nil && cfg.httpsOn() {
				return cfg.DataDir, "https://" + cfg.HTTPAddr, nil
			}
			return cfg.DataDir, cfg.HTTPAddr, err
		},
	}
}

// versionString describes this build.
func versionString() string {
	s := "vigil " + Version
	var extra []string
	if bi, ok := debug.ReadBuildInfo(); ok {
		var rev, modified string
		for _, kv := range bi.Settings {
			switch kv.Key {
			case "vcs.revision":
				rev = kv.Value
			case "vcs.modified":
				if kv.Value == "true" {
					modified = "-modified"
				}
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" {
			extra = append(extra, "commit "+rev+modified)
		}
	}
	extra = append(extra, runtime.Version(), runtime.GOOS+"/"+runtime.GOARCH)
	return s + " (" + strings.Join(extra, ", ") + ")"
}
