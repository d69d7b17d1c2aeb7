package appliance

import (
	"bufio"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/vigilarc/vigil/provisioning"
)

// HTTPS on http_addr. Outside loopback the console and the API speak HTTPS
// by default, with the node's certificate from the cluster CA (whose
// certificate operators install once, docs/install.md) or a certificate
// from the customer's own CA (http_tls_cert_file). A joining appliance
// always gets the cluster's chain, which it pins: it asks for it with
// ALPN (provisioning.JoinALPN), so a customer certificate on the port does
// not stop a join.
//
// One port serves both: the first byte of a connection tells a TLS
// handshake from a plain HTTP request, and a plain request gets a
// redirect to the same address over HTTPS, so an operator who types the
// appliance's address without https:// still reaches the console.

// sniffTimeout bounds the wait for a new connection's first byte.
const sniffTimeout = 10 * time.Second

// httpsOn reports whether http_addr speaks HTTPS: http_tls "on", or
// "auto" (the default) on an address that is not loopback.
func (c Config) httpsOn() bool {
	switch c.HTTPTLS {
	case "on":
		return true
	case "off":
		return false
	}
	return !isLoopbackAddr(c.HTTPAddr)
}

// httpsConfig is the HTTPS listener's configuration: the customer's
// certificate when configured (for browsers and API clients), the node's
// chain from the cluster CA otherwise and always for a joiner.
func (n *Node) httpsConfig() (*tls.Config, error) {
	var custom *tls.Config
	if n.cfg.HTTPTLSCertFile != "" {
		pair, err := tls.LoadX509KeyPair(n.cfg.HTTPTLSCertFile, n.cfg.HTTPTLSKeyFile)
		if err != nil {
			return nil, fieldErr("http_tls_cert_file", n.cfg.HTTPTLSCertFile, "and http_tls_key_file are not a certificate and its key: %v", err)
		}
		custom = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			if custom != nil && !slices.Contains(h.SupportedProtos, provisioning.JoinALPN) {
				return custom, nil
			}
			t, _, _ := n.trust.get()
			if t == nil {
				return nil, errNoTrust
			}
			return provisioning.ServerTLS(t.CA, t.Node), nil
		},
	}, nil
}

// sniffListener splits the connections of one port into TLS and plain
// ones, by their first byte: a TLS record of a handshake is 0x16.
type sniffListener struct {
	ln     net.Listener
	tlsCfg *tls.Config
	logger *slog.Logger
	secure *chanListener
	plain  *chanListener
	once   sync.Once
}

func newSniffListener(ln net.Listener, cfg *tls.Config, logger *slog.Logger) *sniffListener {
	s := &sniffListener{ln: ln, tlsCfg: cfg, logger: logger,
		secure: newChanListener(ln.Addr()), plain: newChanListener(ln.Addr())}
	go s.run()
	return s
}

// Backoff of a failed accept: it starts at acceptRetryMin and doubles up
// to acceptRetryMax, as http.Server's.
const (
	acceptRetryMin = 5 * time.Millisecond
	acceptRetryMax = time.Second
)

func (s *sniffListener) run() {
	var delay time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				s.Close()
				return
			}
			// A passing failure, such as too many open files: wait and
			// accept again. Closing would leave the node running with no
			// console and no API until it restarts.
			delay = min(max(2*delay, acceptRetryMin), acceptRetryMax)
			s.logger.Warn("cannot accept a connection on http_addr; retrying", logKeyError, err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		go s.classify(c)
	}
}

// classify reads the first byte of c and hands it on, the byte kept.
func (s *sniffListener) classify(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(sniffTimeout))
	br := bufio.NewReaderSize(c, 1024)
	b, err := br.Peek(1)
	if err != nil {
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	pc := &peekedConn{Conn: c, r: br}
	if b[0] == 0x16 {
		s.secure.push(tls.Server(pc, s.tlsCfg))
		return
	}
	s.plain.push(pc)
}

// Close stops accepting on both.
func (s *sniffListener) Close() error {
	var err error
	s.once.Do(func() {
		err = s.ln.Close()
		s.secure.Close()
		s.plain.Close()
	})
	return err
}

// peekedConn is a connection whose first bytes were read into r.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (p *peekedConn) Read(b []byte) (int, error) { return p.r.Read(b) }

// chanListener is a listener fed by a channel.
type chanListener struct {
	addr   net.Addr
	ch     chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) push(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.closed.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// redirectToHTTPS answers a plain HTTP request on the HTTPS port: a
// permanent redirect to the same host and path over HTTPS.
func redirectToHTTPS(w http.ResponseWriter, r *http.Request) {
	if r.Host == "" {
		http.Error(w, "this port speaks HTTPS: use https://", http.StatusBadRequest)
		return
	}
	w.Header().Set("Connection", "close")
	http.Redirect(w, r, "https://"+r.Host+r.URL.RequestURI(), http.StatusPermanentRedirect)
}
