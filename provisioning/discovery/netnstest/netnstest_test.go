package netnstest_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/provisioning/discovery/netnstest"
)

// helperEnv selects the role of this test binary when a test runs it in a
// namespace; the role's argument follows a space.
const helperEnv = "NETNSTEST_HELPER"

const group = "239.77.77.77:7777"

// TestHelperProcess is not a test: it is this binary run by the tests
// below inside a namespace, in the role helperEnv names.
func TestHelperProcess(t *testing.T) {
	role, arg, _ := strings.Cut(os.Getenv(helperEnv), " ")
	if role == "" {
		return
	}
	if err := helper(role, arg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func helper(role, arg string) error {
	switch role {
	case "recv": // print the first datagram to the group, and its sender
		ifi, err := net.InterfaceByName(netnstest.Iface)
		if err != nil {
			return err
		}
		addr, _ := net.ResolveUDPAddr("udp4", group)
		c, err := net.ListenMulticastUDP("udp4", ifi, addr)
		if err != nil {
			return err
		}
		fmt.Println("ready")
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 100)
		n, from, err := c.ReadFromUDP(buf)
		if err != nil {
			return err
		}
		fmt.Println(string(buf[:n]), from.IP)
	case "send": // send arg to the group for a few seconds
		c, err := net.Dial("udp4", group)
		if err != nil {
			return err
		}
		for range 30 {
			_, _ = c.Write([]byte(arg))
			time.Sleep(100 * time.Millisecond)
		}
	case "listen": // accept TCP on arg until killed
		l, err := net.Listen("tcp", arg)
		if err != nil {
			return err
		}
		fmt.Println("ready")
		for {
			c, err := l.Accept()
			if err != nil {
				return err
			}
			c.Close()
		}
	case "dial": // dial arg once
		c, err := net.DialTimeout("tcp", arg, time.Second)
		if err != nil {
			return err
		}
		c.Close()
	default:
		return fmt.Errorf("unknown role %q", role)
	}
	return nil
}

// helperCmd runs this binary in namespace i in role with arg.
func helperCmd(nw *netnstest.Net, i int, role, arg string) *exec.Cmd {
	cmd := nw.Command(i, os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"="+role+" "+arg)
	return cmd
}

// startReady starts cmd and waits for its "ready" line; the rest of its
// output is read from the returned reader. It is killed when t ends.
func startReady(t *testing.T, cmd *exec.Cmd) *bufio.Reader {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	r := bufio.NewReader(out)
	line, err := r.ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("helper did not get ready: %q, %v", line, err)
	}
	return r
}

func TestNet_ForwardsMulticast(t *testing.T) {
	nw := netnstest.New(t, 2)
	recv := helperCmd(nw, 1, "recv", "")
	r := startReady(t, recv)
	send := helperCmd(nw, 0, "send", "hello")
	send.Stderr = os.Stderr
	if err := send.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = send.Process.Kill(); _ = send.Wait() })

	got, _ := io.ReadAll(r)
	if want := "hello " + nw.IPs[0].String() + "\n"; string(got) != want {
		t.Fatalf("namespace 1 received %q, want %q", got, want)
	}
}

func TestNet_Unplug(t *testing.T) {
	nw := netnstest.New(t, 2)
	addr := net.JoinHostPort(nw.IPs[1].String(), "7000")
	startReady(t, helperCmd(nw, 1, "listen", addr))
	dial := func() error {
		out, err := helperCmd(nw, 0, "dial", addr).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	if err := dial(); err != nil {
		t.Fatalf("namespace 0 cannot reach namespace 1: %v", err)
	}
	nw.Unplug(1)
	if err := dial(); err == nil {
		t.Fatal("namespace 0 reached namespace 1 unplugged")
	}
	nw.Plug(1)
	if err := dial(); err != nil {
		t.Fatalf("namespace 0 cannot reach namespace 1 plugged back: %v", err)
	}
}

func TestNet_Cleanup(t *testing.T) {
	var names []string
	t.Run("make", func(t *testing.T) {
		nw := netnstest.New(t, 2)
		names = nw.Names
		// A process left running must not keep the test from ending.
		startReady(t, helperCmd(nw, 0, "listen", ":7000"))
	})
	if len(names) == 0 {
		t.Skip("the subtest made no namespaces")
	}
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatal(err, string(out))
	}
	for _, n := range names {
		if strings.Contains(string(out), n) {
			t.Errorf("namespace %s is left after the test", n)
		}
	}
}
