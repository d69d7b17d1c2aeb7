package broker

import (
	"crypto/tls"
	"fmt"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// MinTLSVersion is the oldest TLS version the MQTT over TLS and secure
// WebSocket listeners accept, whatever Config.TLS says.
const MinTLSVersion = tls.VersionTLS12

// Validate returns a problem with c that Open would refuse, naming the
// field: a TLS listener without a TLS configuration, or a rate limit out of
// bounds (limit.go).
func (c Config) Validate() error {
	if err := c.validateLimits(); err != nil {
		return err
	}
	if c.TLS != nil {
		return nil
	}
	if c.TLSAddr != "" {
		return fmt.Errorf("broker: TLSAddr %q needs a certificate: Config.TLS is nil", c.TLSAddr)
	}
	if c.WSSAddr != "" {
		return fmt.Errorf("broker: WSSAddr %q needs a certificate: Config.TLS is nil", c.WSSAddr)
	}
	return nil
}

// serverTLS is Config.TLS for one listener: a copy (net/http adds its
// protocols to the one it is given), at least MinTLSVersion.
func (b *Broker) serverTLS() *tls.Config {
	c := b.cfg.TLS.Clone()
	if c.MinVersion < MinTLSVersion {
		c.MinVersion = MinTLSVersion
	}
	return c
}

// addTLSListeners adds the MQTT over TLS and the secure WebSocket
// listeners that are configured. They serve the same server, so the same
// hooks (access, ACL, ingest, presence) see their clients as the plain
// listeners' clients: mochi's hooks are server-wide.
func (b *Broker) addTLSListeners(s *mqtt.Server) error {
	if b.cfg.TLSAddr != "" {
		l, err := b.listenTCP(s, "tls", b.cfg.TLSAddr, b.serverTLS())
		if err != nil {
			return fmt.Errorf("cannot listen for MQTT over TLS on %s: %w", b.cfg.TLSAddr, err)
		}
		b.tlsTCP = l
	}
	if b.cfg.WSSAddr != "" {
		// The WebSocket listener binds in Serve, not here: a busy port is
		// logged by mochi, as for WSAddr.
		ws := listeners.NewWebsocket(listeners.Config{ID: "wss", Address: b.cfg.WSSAddr, TLSConfig: b.serverTLS()})
		if err := s.AddListener(ws); err != nil {
			return fmt.Errorf("cannot listen for MQTT over secure WebSocket on %s: %w", b.cfg.WSSAddr, err)
		}
	}
	return nil
}

// TLSAddr returns the address of the MQTT over TLS listener once open,
// else the configured one.
func (b *Broker) TLSAddr() string {
	if b.tlsTCP != nil {
		return b.tlsTCP.Address()
	}
	return b.cfg.TLSAddr
}
