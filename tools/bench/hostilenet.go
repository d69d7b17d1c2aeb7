package main

// The hostile part's clients: bare MQTT connections that send exactly the
// packets a case needs (mochi's packet encoder, over a plain TCP
// connection), dialled from any address of 127.0.0.0/8 so that a case can
// come from many remote addresses, and bare HTTP requests whose body is
// streamed rather than held.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// hostileIOTimeout bounds one read or write of a bare connection.
const hostileIOTimeout = 10 * time.Second

// loopbackAddr returns the i-th address (from 0) of block, one of the /16
// blocks of 127.0.0.0/8 the hostile part gives each case (127.<block>.x.y),
// so that no two cases share an address and none is 127.0.0.1, the
// legitimate clients' address.
func loopbackAddr(block, i int) net.IP {
	i++ // never .0.0
	return net.IPv4(127, byte(block), byte(i>>8), byte(i&0xff))
}

// dialFrom dials addr over TCP from the local address from.
func dialFrom(ctx context.Context, from net.IP, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: hostileIOTimeout, LocalAddr: &net.TCPAddr{IP: from}}
	return d.DialContext(ctx, "tcp", addr)
}

// rawMQTT is a bare MQTT connection.
type rawMQTT struct {
	c net.Conn
	r *bufio.Reader
	v byte // protocol version: 4 for 3.1.1, 5
}

// dialMQTT opens a bare MQTT connection of version v (4 or 5) from from
// to addr; nothing is sent yet.
func dialMQTT(ctx context.Context, from net.IP, addr string, v byte) (*rawMQTT, error) {
	c, err := dialFrom(ctx, from, addr)
	if err != nil {
		return nil, err
	}
	return &rawMQTT{c: c, r: bufio.NewReader(c), v: v}, nil
}

func (m *rawMQTT) close() { m.c.Close() }

// connectPacket is a clean CONNECT of device id with secret.
func (m *rawMQTT) connectPacket(id, secret string) packets.Packet {
	return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: m.v,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), ClientIdentifier: id, Clean: true, Keepalive: 60,
			UsernameFlag: true, Username: []byte(id), PasswordFlag: true, Password: []byte(secret)}}
}

// connect sends pk, a CONNECT, and returns the CONNACK decoded, or the
// error that ended the wait for it (the connection closed, or no answer).
func (m *rawMQTT) connect(pk packets.Packet) (packets.Packet, error) {
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		return packets.Packet{}, err
	}
	if err := m.write(buf.Bytes()); err != nil {
		return packets.Packet{}, err
	}
	ack, err := m.read(hostileIOTimeout)
	if err != nil {
		return ack, err
	}
	if ack.FixedHeader.Type != packets.Connack {
		return ack, fmt.Errorf("want a CONNACK, got %s", packets.PacketNames[ack.FixedHeader.Type])
	}
	return ack, nil
}

// publishPacket encodes a QoS 1 PUBLISH of payload to topic.
func (m *rawMQTT) publishPacket(id uint16, topic string, payload []byte) ([]byte, error) {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, ProtocolVersion: m.v,
		TopicName: topic, PacketID: id, Payload: payload}
	var buf bytes.Buffer
	if err := pk.PublishEncode(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (m *rawMQTT) write(b []byte) error {
	_ = m.c.SetWriteDeadline(time.Now().Add(hostileIOTimeout))
	_, err := m.c.Write(b)
	return err
}

// read returns the next packet, decoded as far as the part needs (CONNACK,
// PUBACK, DISCONNECT), waiting at most timeout.
func (m *rawMQTT) read(timeout time.Duration) (packets.Packet, error) {
	pk := packets.Packet{ProtocolVersion: m.v}
	_ = m.c.SetReadDeadline(time.Now().Add(timeout))
	hb, err := m.r.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(hb); err != nil {
		return pk, err
	}
	n, shift := 0, 0
	for {
		b, err := m.r.ReadByte()
		if err != nil {
			return pk, err
		}
		n |= int(b&0x7f) << shift
		if b&0x80 == 0 {
			break
		}
		if shift += 7; shift > 21 {
			return pk, errors.New("malformed remaining length")
		}
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(m.r, body); err != nil {
		return pk, err
	}
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	}
	return pk, err
}

// connackText describes a CONNACK's code as the report shows it: "0x87",
// or what ended the wait for it.
func connackText(ack packets.Packet, err error) string {
	if err != nil {
		return closedText(err)
	}
	return fmt.Sprintf("0x%02x", ack.ReasonCode)
}

// closedText names how a connection ended a wait: closed by the node, or
// no answer in time.
func closedText(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), isReset(err):
		return "closed"
	case errors.As(err, &ne) && ne.Timeout():
		return "no answer"
	}
	return "error: " + err.Error()
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}

// streamedUpload is the outcome of one request whose body is streamed.
type streamedUpload struct {
	status  int           // the reply's status, 0 if none came
	sent    int64         // body bytes written before the reply, or before writing failed
	after   time.Duration // from the first body byte to the reply, or to the failure
	errText string        // why no reply came
}

// streamUpload sends a POST to path on addr, from from, with the headers
// given and a body of size zero bytes, its length declared or, if chunked,
// not; the body is written in pieces until the reply arrives, writing
// fails or limit passes. It reads the reply's status.
func streamUpload(ctx context.Context, from net.IP, addr, path string, headers map[string]string, size int64, chunked bool, limit time.Duration) streamedUpload {
	c, err := dialFrom(ctx, from, addr)
	if err != nil {
		return streamedUpload{errText: err.Error()}
	}
	defer c.Close()
	var head strings.Builder
	fmt.Fprintf(&head, "POST %s HTTP/1.1\r\nHost: %s\r\nOrigin: http://%s\r\n", path, addr, addr)
	if chunked {
		head.WriteString("Transfer-Encoding: chunked\r\n")
	} else {
		fmt.Fprintf(&head, "Content-Length: %d\r\n", size)
	}
	for k, v := range headers {
		fmt.Fprintf(&head, "%s: %s\r\n", k, v)
	}
	head.WriteString("\r\n")
	_ = c.SetDeadline(time.Now().Add(limit))
	if _, err := io.WriteString(c, head.String()); err != nil {
		return streamedUpload{errText: err.Error()}
	}
	start := time.Now()
	replied := make(chan int, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			replied <- 0
			return
		}
		resp.Body.Close()
		replied <- resp.StatusCode
	}()
	const piece = 64 << 10
	chunk := make([]byte, piece)
	if chunked {
		// Each piece one chunk: its size line, the bytes, CRLF.
		prefix := fmt.Sprintf("%x\r\n", piece)
		chunk = append([]byte(prefix), append(make([]byte, piece), '\r', '\n')...)
	}
	var sent int64
	var werr error
	for sent < size {
		select {
		case st := <-replied:
			return streamedUpload{status: st, sent: sent, after: time.Since(start)}
		default:
		}
		b := chunk
		if !chunked {
			b = chunk[:min(int64(len(chunk)), size-sent)]
		}
		n, err := c.Write(b)
		sent += int64(n)
		if err != nil {
			werr = err
			break
		}
	}
	// Writing ended: the whole body went, or the node closed the
	// connection; its reply may still be in the socket.
	select {
	case st := <-replied:
		return streamedUpload{status: st, sent: sent, after: time.Since(start)}
	case <-time.After(hostileIOTimeout):
	}
	if werr != nil {
		return streamedUpload{sent: sent, after: time.Since(start), errText: closedText(werr)}
	}
	return streamedUpload{sent: sent, after: time.Since(start), errText: "no reply"}
}

// statusTally counts answers by name ("401", "0x03", "closed") and lists
// them in the order of first sight.
type statusTally struct {
	order []string
	n     map[string]int
}

func (t *statusTally) add(name string) {
	if t.n == nil {
		t.n = map[string]int{}
	}
	if t.n[name] == 0 {
		t.order = append(t.order, name)
	}
	t.n[name]++
}

// String is "1,990 × 401, 10 × 503", in the order first seen.
func (t *statusTally) String() string {
	var parts []string
	for _, k := range t.order {
		parts = append(parts, thousands(t.n[k])+" × "+k)
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

// thousands formats n with commas: 20,000.
func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
