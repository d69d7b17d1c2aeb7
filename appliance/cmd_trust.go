package appliance

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/vigilarc/vigil/cluster"
	"github.com/vigilarc/vigil/provisioning"
	"github.com/vigilarc/vigil/provisioning/discovery"
)

// vigil init, vigil join and vigil token join: how IT gives appliances
// their trust (docs/install.md). init makes the cluster's CA on the first
// appliance and prints a join token; join, on each other appliance, uses
// the token to get a certificate from a member and records the members to
// join through; serve then runs the node. A token is made offline from the
// CA key (provisioning: its secret is an HMAC under it), so init and
// token join need no running node.

// joinedFile, in TrustDir, records the members an appliance that joined
// with a token dials until it is a voter: a node whose trust came from a
// join never starts a cluster of its own.
const joinedFile = "joined.json"

// joinedRecord is joinedFile's content.
type joinedRecord struct {
	ClusterID string   `json:"cluster_id"`
	Members   []string `json:"members"` // cluster addresses
	At        string   `json:"at"`
}

// readJoined returns the members recorded by vigil join, nil when the
// node did not join with a token.
func readJoined(dataDir string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, provisioning.TrustDir, joinedFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r joinedRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", joinedFile, err)
	}
	return r.Members, nil
}

// writeNodeID keeps the node's ID in its new data directory, where the
// cluster node reads it (and its certificate names it).
func writeNodeID(dataDir, id string) error {
	if err := os.MkdirAll(dataDir, dataDirMode); err != nil {
		return err
	}
	if err := provisioning.WriteFile(filepath.Join(dataDir, "node-id"), []byte(id+"\n"), 0o600); err != nil {
		return fmt.Errorf("cannot write the node ID: %w", err)
	}
	return nil
}

// hasState reports whether dataDir already holds a cluster node's state.
func hasState(dataDir string) bool {
	_, err := os.Stat(filepath.Join(dataDir, "raft"))
	return err == nil
}

// joinTokenOptions are the join token flags of init and token join.
type joinTokenOptions struct {
	ttl     time.Duration
	uses    int
	noAddrs bool
}

func addTokenFlags(fs *flag.FlagSet, o *joinTokenOptions, usesHelp string) {
	fs.DurationVar(&o.ttl, "token-ttl", provisioning.DefaultJoinTokenTTL, "how long the join token lasts (at most a week)")
	fs.IntVar(&o.uses, "token-uses", 0, usesHelp)
	fs.BoolVar(&o.noAddrs, "token-no-addrs", false, "put no address in the join token: joiners find the members with discovery")
}

func (c *cli) initCmd(_ context.Context, args []string) error {
	fs, o := serveFlags(c.stderr)
	fs.Init("init", flag.ContinueOnError)
	var expect int
	var to joinTokenOptions
	fs.IntVar(&expect, "expect", 3, "how many appliances the cluster will have: the join token lets the others join")
	addTokenFlags(fs, &to, "how many appliances the join token lets join (default --expect minus one)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: vigil init [--expect 3] [serve's flags]

Sets up the first appliance of a new cluster: makes the cluster's CA and
this appliance's certificate in <data_dir>/tls, and prints a join token
for the others (vigil join). Then start it with vigil serve. It takes the
same configuration as vigil serve (--config, flags, VIGIL_ variables).

Flags:
`)
		fs.PrintDefaults()
	}
	cfg, pos, err := parseConfigFlags(fs, o, args, c.lookupEnv)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr(fs, "unexpected argument %q", pos[0])
	}
	if expect < 1 || expect > 7 {
		return usageErr(fs, "--expect %d: a cluster has 1 to 7 appliances (3 is the design)", expect)
	}
	if to.uses == 0 {
		to.uses = max(expect-1, 1)
	}
	if t, err := loadTrust(cfg.DataDir); err != nil || t != nil {
		if err != nil {
			return err
		}
		return fmt.Errorf("%s already holds the trust of cluster %s: this appliance is set up (make another join token with vigil token join)",
			filepath.Join(cfg.DataDir, provisioning.TrustDir), t.CA.ClusterID)
	}
	if hasState(cfg.DataDir) {
		return fmt.Errorf("%s already holds a node's state: vigil init is for a new appliance", cfg.DataDir)
	}
	id, err := nodeIdentity(cfg, nil)
	if err != nil {
		return err
	}
	if err := writeNodeID(cfg.DataDir, id); err != nil {
		return err
	}
	t, err := provisioning.InitTrust(uuid.NewString(), id, nodeNames(cfg), time.Now())
	if err != nil {
		return err
	}
	if err := t.Save(cfg.DataDir); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "vigil: this appliance (node %s) is the first of cluster %s.\n", id, t.CA.ClusterID)
	fmt.Fprintf(c.stdout, "  the cluster CA is %s, SHA-256 fingerprint\n    %s\n  Note the fingerprint: operator PCs check it when they install the CA (docs/install.md).\n",
		filepath.Join(cfg.DataDir, provisioning.TrustDir, "ca.crt"), provisioning.DisplayFingerprint(t.CA.Fingerprint()))
	if expect == 1 {
		fmt.Fprintln(c.stdout, "Start it with: vigil serve (with the same configuration).")
		return nil
	}
	return c.printJoinToken(cfg, t, to)
}

// printJoinToken makes a join token of t for the appliances to come and
// prints it with what to do with it.
func (c *cli) printJoinToken(cfg Config, t *provisioning.Trust, to joinTokenOptions) error {
	addr := joinAddr(cfg)
	var addrs []string
	if addr != "" && !to.noAddrs {
		addrs = []string{addr}
	}
	tok, err := provisioning.NewJoinToken(t.CA, addrs, to.ttl, to.uses, time.Now())
	if err != nil {
		return err
	}
	if !cfg.httpsOn() {
		fmt.Fprintf(c.stderr, "vigil: warning: http_addr %s speaks plain HTTP (http_tls %q), but appliances join over HTTPS: set http_tls: on, or a LAN http_addr\n",
			cfg.HTTPAddr, cfg.HTTPTLS)
	}
	fmt.Fprintf(c.stdout, "Join token for %d appliance(s), valid until %s:\n\n%s\n\n", tok.Uses, tok.Expires.Local().Format(time.RFC1123), tok)
	fmt.Fprintf(c.stdout, "On each other appliance run:  vigil join <token>   then  vigil serve\n"+
		"(each with its own configuration). They reach this one at %s while this one runs vigil serve.\n"+
		"Keep the token secret: until it expires or is used up, it lets an appliance join.\n", reachText(addrs))
	return nil
}

func reachText(addrs []string) string {
	if len(addrs) == 0 {
		return "the address discovery finds on the LAN"
	}
	return "https://" + strings.Join(addrs, ", https://")
}

// joinAddr is the address at which joiners reach this node's HTTPS:
// http_addr, a wildcard host replaced by the cluster address's host.
func joinAddr(cfg Config) string {
	host, port, _ := net.SplitHostPort(cfg.HTTPAddr)
	if isWildcard(host) {
		adv := cfg.Cluster.AdvertiseAddr
		if adv == "" {
			adv = cfg.Cluster.BindAddr
		}
		h, _, err := net.SplitHostPort(adv)
		if err != nil || isWildcard(h) {
			return "" // no address to give: joiners find the node with discovery
		}
		host = h
	}
	return net.JoinHostPort(host, port)
}

func (c *cli) joinCmd(ctx context.Context, args []string) error {
	fs, o := serveFlags(c.stderr)
	fs.Init("join", flag.ContinueOnError)
	var via string
	fs.StringVar(&via, "via", "", "comma-separated `addresses` (host:port of a member's HTTPS) to try before the token's")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: vigil join <token> [serve's flags]

Joins this new appliance to a cluster: makes its key, asks a member (at the
token's addresses) to sign its certificate, checking that the member
presents the CA the token pins, and keeps the certificate in
<data_dir>/tls. Then start it with vigil serve: it catches up and becomes
a voter. It takes the same configuration as vigil serve.

Flags:
`)
		fs.PrintDefaults()
	}
	cfg, pos, err := parseConfigFlags(fs, o, args, c.lookupEnv)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr(fs, "give the join token that vigil init or vigil token join printed")
	}
	return c.joinWithToken(ctx, cfg, pos[0], splitList(via))
}

// joinWithToken joins the appliance of cfg, which has no trust yet, to the
// cluster of the join token text, through via and the token's addresses,
// then the LAN's (discovery), and saves its trust.
func (c *cli) joinWithToken(ctx context.Context, cfg Config, text string, via []string) error {
	tok, err := provisioning.ParseJoinToken(text)
	if err != nil {
		return err
	}
	if tok.Expired(time.Now()) {
		return fmt.Errorf("the join token expired at %s: make a new one on a member with vigil token join", tok.Expires.Local().Format(time.RFC1123))
	}
	if t, err := loadTrust(cfg.DataDir); err != nil || t != nil {
		if err != nil {
			return err
		}
		return fmt.Errorf("%s already holds the trust of cluster %s: this appliance is set up", filepath.Join(cfg.DataDir, provisioning.TrustDir), t.CA.ClusterID)
	}
	if hasState(cfg.DataDir) {
		return fmt.Errorf("%s already holds a node's state: vigil join is for a new appliance (remove the directory to start again)", cfg.DataDir)
	}
	clusterAddr := cfg.Cluster.AdvertiseAddr
	if clusterAddr == "" {
		clusterAddr = cfg.Cluster.BindAddr
	}
	id, err := nodeIdentity(cfg, nil)
	if err != nil {
		return err
	}
	key, err := provisioning.NewNodeKey()
	if err != nil {
		return err
	}
	name := cfg.NodeName
	if name == "" {
		name, _ = os.Hostname()
	}
	addrs := append(via, tok.Addrs...)
	jctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	req := provisioning.JoinRequest{NodeID: id, Name: name, ClusterAddr: clusterAddr}
	var t *provisioning.Trust
	var members []provisioning.JoinMember
	var refused *provisioning.RefusedJoinError
	if len(addrs) > 0 {
		t, members, err = provisioning.Join(jctx, tok, key, nodeNames(cfg), req, addrs)
	}
	if (len(addrs) == 0 || err != nil && !errors.As(err, &refused)) && cfg.Discovery.Mode != "off" {
		// The token's addresses did not answer (or it has none): look on
		// the LAN for the members of its cluster. What answers must still
		// present the pinned CA.
		found := c.discover(jctx, cfg, tok.ClusterID)
		if len(found) > 0 {
			t, members, err = provisioning.Join(jctx, tok, key, nodeNames(cfg), req, found)
		} else if err == nil {
			err = errors.New("the token carries no member address and discovery found no member of its cluster on the LAN: give one with --via")
		}
	}
	if err != nil {
		return err
	}
	if err := writeNodeID(cfg.DataDir, id); err != nil {
		return err
	}
	if err := t.Save(cfg.DataDir); err != nil {
		return err
	}
	rec, _ := json.MarshalIndent(joinedRecord{ClusterID: t.CA.ClusterID, Members: joinMembers(members, id), At: time.Now().UTC().Format(time.RFC3339)}, "", "  ")
	if err := provisioning.WriteFile(filepath.Join(cfg.DataDir, provisioning.TrustDir, joinedFile), rec, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "vigil: this appliance (node %s) has joined cluster %s; its certificate is in %s.\n"+
		"Start it with: vigil serve (with the same configuration). It catches up from the others and then votes.\n",
		id, t.CA.ClusterID, filepath.Join(cfg.DataDir, provisioning.TrustDir))
	return nil
}

// discover looks on the LAN for members of clusterID and returns their
// HTTPS addresses.
func (c *cli) discover(ctx context.Context, cfg Config, clusterID string) []string {
	var ifaces []net.Interface
	for _, name := range cfg.Discovery.Interfaces {
		if i, err := net.InterfaceByName(name); err == nil {
			ifaces = append(ifaces, *i)
		}
	}
	var out []string
	for attempt := 0; attempt < 3 && len(out) == 0; attempt++ {
		bctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		peers, err := discovery.Browse(bctx, clusterID, ifaces)
		cancel()
		if err != nil {
			fmt.Fprintf(c.stderr, "vigil join: discovery: %v\n", err)
			return nil
		}
		for _, p := range peers {
			if p.State != discovery.StateMember {
				continue
			}
			for _, ip := range p.Addrs {
				out = append(out, net.JoinHostPort(ip.String(), strconv.Itoa(p.Port)))
			}
		}
	}
	if len(out) > 0 {
		fmt.Fprintf(c.stdout, "vigil join: found members of cluster %s on the LAN: %s\n", clusterID, strings.Join(out, ", "))
	}
	return out
}

// trustTokenCmd is vigil token join: a new join token, made from the CA
// key in this appliance's data directory.
func (c *cli) trustTokenCmd(args []string) error {
	fs, o := serveFlags(c.stderr)
	fs.Init("token join", flag.ContinueOnError)
	var to joinTokenOptions
	addTokenFlags(fs, &to, "how many appliances the join token lets join (default 1)")
	cfg, pos, err := parseConfigFlags(fs, o, args, c.lookupEnv)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr(fs, "unexpected argument %q", pos[0])
	}
	t, err := provisioning.LoadTrust(cfg.DataDir)
	if err != nil {
		return err
	}
	if !t.CA.CanSign() {
		return errors.New("this appliance does not hold the CA key: make the token on another member")
	}
	return c.printJoinToken(cfg, t, to)
}

// replaceNodeCmd is vigil replace-node: on a live member, remove a dead
// member and make a join token for the appliance that replaces it
// (docs/install.md, "Replacing a failed appliance").
func (c *cli) replaceNodeCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("replace-node", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	addr := addrFlag(fs, c.lookupEnv)
	auth := addAuthFlags(fs)
	force := fs.Bool("force", false, "remove the node even though it still answers")
	var to joinTokenOptions
	addTokenFlags(fs, &to, "how many appliances the join token lets join (default 1)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: vigil replace-node OLD-ID [--config FILE | --data-dir DIR] [--addr URL]

Run on a live appliance that holds the CA key. Removes the failed member
OLD-ID from the cluster (its certificate is refused from then on, even if
the box comes back), then prints a join token for its replacement: run
vigil join <token> and vigil serve on the new appliance. A member that
still answers is not removed without --force.

`+clientAuthHelp+`
Flags:
`)
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr(fs, "give the ID of the node to replace (vigil status lists them)")
	}
	old := pos[0]
	path := auth.config
	if path == "" {
		path, _ = c.lookupEnv(EnvPrefix + "CONFIG")
	}
	cfg, err := LoadConfig(path, c.lookupEnv)
	if err != nil {
		return err
	}
	if auth.dataDir != "" {
		cfg.DataDir = auth.dataDir
	}
	t, err := provisioning.LoadTrust(cfg.DataDir)
	if err != nil {
		return err
	}
	if !t.CA.CanSign() {
		return errors.New("this appliance does not hold the CA key: run replace-node on another member")
	}
	if t.NodeID() == old {
		return fmt.Errorf("%s is this appliance: run replace-node on a live member", old)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	base := *addr
	if !set["addr"] {
		if _, env := c.lookupEnv(EnvPrefix + "ADDR"); !env {
			scheme := "http"
			if cfg.httpsOn() {
				scheme = "https"
			}
			base = localURL(scheme + "://" + cfg.HTTPAddr)
		}
	}
	client, err := newAPIClient(base, DefaultClientTimeout)
	if err != nil {
		return err
	}
	if err := c.authorise(client, auth); err != nil {
		return err
	}
	// The token names the address this command reached the node at.
	if u, err := url.Parse(client.base); err == nil && u.Host != "" {
		cfg.HTTPAddr = u.Host
		if u.Scheme == "https" {
			cfg.HTTPTLS = "on"
		}
	}
	body, err := client.do(ctx, http.MethodGet, "/api/v1/cluster/status", nil)
	if err != nil {
		return err
	}
	var st cluster.Status
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("the node's status: %w", err)
	}
	i := slices.IndexFunc(st.Members, func(m cluster.Member) bool { return m.ID == old })
	if i < 0 {
		return fmt.Errorf("%s is not a member of the cluster (vigil status lists the members)", old)
	}
	if m := st.Members[i]; !*force && (m.Reachable || probeMember(m.Addr, t) == nil) {
		return fmt.Errorf("%s (%s) still answers: it is not dead. Stop it first, or give --force", old, m.Addr)
	}
	if _, err := client.do(ctx, http.MethodDelete, "/api/v1/cluster/members/"+url.PathEscape(old), nil); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "vigil: node %s removed from cluster %s; its certificate is refused from now on.\n", old, t.CA.ClusterID)
	if to.uses == 0 {
		to.uses = 1
	}
	return c.printJoinToken(cfg, t, to)
}

// probeMember reports whether the member at addr completes a cluster-port
// handshake with this appliance's certificate, and answers the protocol
// byte: nil means it is up.
func probeMember(addr string, t *provisioning.Trust) error {
	_, client := provisioning.PeerTLS(t.CA, t.Node, nil)
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", addr, client)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := conn.Write([]byte{1}); err != nil { // the cluster RPC's protocol byte
		return err
	}
	_, err = conn.Read(make([]byte, 1))
	return err
}
