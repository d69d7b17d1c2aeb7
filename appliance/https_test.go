package appliance

import (
	"errors"
	"log/slog"
	"net"
	"syscall"
	"testing"
	"time"
)

// fakeListener is a net.Listener whose Accept is a function.
type fakeListener struct {
	accept func() (net.Conn, error)
}

func (f *fakeListener) Accept() (net.Conn, error) { return f.accept() }
func (f *fakeListener) Close() error              { return nil }
func (f *fakeListener) Addr() net.Addr            { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// A failed accept, such as too many open files, does not close the HTTP
// port: the next connection is served. Only a closed listener ends it.
func TestSniffListener_AcceptFailureIsPassing(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	calls := 0
	closed := make(chan struct{})
	ln := &fakeListener{accept: func() (net.Conn, error) {
		calls++
		switch calls {
		case 1, 2:
			return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
		case 3:
			return server, nil
		}
		<-closed
		return nil, net.ErrClosed
	}}
	s := newSniffListener(ln, nil, slog.New(slog.DiscardHandler))
	defer s.Close()
	go client.Write([]byte("GET / HTTP/1.1\r\n"))
	got := make(chan error, 1)
	go func() {
		c, err := s.plain.Accept()
		if err == nil {
			c.Close()
		}
		got <- err
	}()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("the connection after two failed accepts: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the connection after two failed accepts was never handed on")
	}
	close(closed)
	if _, err := s.plain.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("after the listener closed, Accept = %v", err)
	}
}
