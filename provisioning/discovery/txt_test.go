package discovery

import (
	"context"
	"errors"
	"net"
	"reflect"
	"strings"
	"testing"
)

func TestParseTXT_Accepts(t *testing.T) {
	a := Announcement{ClusterID: "c-1", NodeID: "9f0c2b1e-5d3a-4c1b-8e7f-0a1b2c3d4e5f", Name: "vigil-a (rack 2)", State: StateMember, Port: 8443, ClusterPort: 7000}
	p, err := parseTXT(a.txt())
	if err != nil {
		t.Fatal(err)
	}
	want := Peer{NodeID: a.NodeID, ClusterID: "c-1", Name: "vigil-a (rack 2)", State: StateMember, ClusterPort: 7000}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("got %+v, want %+v", p, want)
	}

	// The least: no cluster, name or cluster port; an unknown key ignored.
	p, err = parseTXT([]string{"v=1", "node=n1", "state=new", "future-key=anything at all"})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Peer{NodeID: "n1", State: "new"}); !reflect.DeepEqual(p, want) {
		t.Fatalf("got %+v, want %+v", p, want)
	}
}

func TestParseTXT_Refuses(t *testing.T) {
	base := []string{"v=1", "node=n1", "state=new"}
	with := func(extra ...string) []string { return append(append([]string(nil), base...), extra...) }
	tests := []struct {
		name  string
		txt   []string
		field string
	}{
		{"no version", []string{"node=n1", "state=new"}, "v"},
		{"another version", []string{"v=2", "node=n1", "state=new"}, "v"},
		{"no node", []string{"v=1", "state=new"}, "node"},
		{"no state", []string{"v=1", "node=n1"}, "state"},
		{"node with spaces", []string{"v=1", "node=n 1", "state=new"}, "node"},
		{"node of 500 bytes", []string{"v=1", "node=" + strings.Repeat("a", 500), "state=new"}, "node"},
		{"node of 65 bytes", []string{"v=1", "node=" + strings.Repeat("a", 65), "state=new"}, "node"},
		{"node empty", []string{"v=1", "node=", "state=new"}, "node"},
		{"node with a slash", []string{"v=1", "node=a/b", "state=new"}, "node"},
		{"node escaped by the DNS library", []string{"v=1", `node=a\007b`, "state=new"}, "node"},
		{"cluster with a colon", with("cluster=a:b"), "cluster"},
		{"cluster empty", with("cluster="), "cluster"},
		{"name of 64 bytes", with("name=" + strings.Repeat("x", 64)), "name"},
		{"name with a control byte, escaped", with(`name=a\010b`), "name"},
		{"name with a quote, escaped", with(`name=a\"b`), "name"},
		{"name not ASCII, escaped", with(`name=B\195\188ro`), "name"},
		{"name empty", with("name="), "name"},
		{"state in capitals", []string{"v=1", "node=n1", "state=NEW"}, "state"},
		{"state of 17 letters", []string{"v=1", "node=n1", "state=" + strings.Repeat("a", 17)}, "state"},
		{"cluster port 0", with("cport=0"), "cport"},
		{"cluster port 65536", with("cport=65536"), "cport"},
		{"cluster port with a sign", with("cport=+7000"), "cport"},
		{"cluster port with a leading zero", with("cport=07000"), "cport"},
		{"cluster port not a number", with("cport=seven"), "cport"},
		{"a key twice", with("node=n2"), "TXT key"},
		{"a string without =", with("flag"), "TXT string"},
		{"an empty key", with("=x"), "TXT key"},
		{"a key in capitals", with("Node=x"), "TXT key"},
		{"17 strings", with(strings.Split("a=1 b=1 c=1 d=1 e=1 f=1 g=1 h=1 i=1 j=1 k=1 l=1 m=1 n=1", " ")...), "TXT record"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseTXT(tt.txt)
			var fe *FieldError
			if !errors.As(err, &fe) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want a *FieldError", err)
			}
			if fe.Field != tt.field {
				t.Fatalf("refused field %q (%v), want %q", fe.Field, err, tt.field)
			}
			if len(err.Error()) > 200 {
				t.Fatalf("the error carries %d bytes of the value: %s", len(err.Error()), err)
			}
		})
	}
}

func TestAnnouncement_Check(t *testing.T) {
	good := Announcement{NodeID: "n1", State: StateNew, Port: 8443}
	if err := good.check(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		edit func(*Announcement)
	}{
		{"no port", func(a *Announcement) { a.Port = 0 }},
		{"port too high", func(a *Announcement) { a.Port = 70000 }},
		{"negative cluster port", func(a *Announcement) { a.ClusterPort = -1 }},
		{"no node", func(a *Announcement) { a.NodeID = "" }},
		{"no state", func(a *Announcement) { a.State = "" }},
		{"name with a backslash", func(a *Announcement) { a.Name = `a\b` }},
		{"cluster with a space", func(a *Announcement) { a.ClusterID = "a b" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := good
			tt.edit(&a)
			if err := a.check(); !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
			if _, err := Advertise(a, nil); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Advertise: got %v, want ErrMalformed", err)
			}
		})
	}
}

func TestInstanceLabel(t *testing.T) {
	uuid := "9f0c2b1e-5d3a-4c1b-8e7f-0a1b2c3d4e5f"
	if got := instanceLabel(uuid); got != uuid {
		t.Errorf("a UUID is announced as %q", got)
	}
	long := strings.Repeat("a", 64)
	for _, id := range []string{long, "a.b"} {
		got := instanceLabel(id)
		if len(got) > 63 || strings.Contains(got, ".") {
			t.Errorf("%q is announced as %q, not one DNS label", id, got)
		}
	}
	if instanceLabel(long) == instanceLabel(long[:63]+"b") {
		t.Error("two long IDs share a label")
	}
}

func TestMergeAddrs(t *testing.T) {
	ip := net.ParseIP
	got := mergeAddrs([]net.IP{ip("fd00::1")}, []net.IP{
		ip("10.0.0.1"), ip("fd00::1"), ip("10.0.0.1"), ip("127.0.0.1"), ip("0.0.0.0"),
		ip("224.0.0.251"), ip("fe80::1"), ip("255.255.255.255"), ip("169.254.3.4"), ip("2001:db8::2"),
	})
	want := []net.IP{ip("10.0.0.1").To4(), ip("169.254.3.4").To4(), ip("fd00::1"), ip("2001:db8::2")}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestStatic_Find(t *testing.T) {
	s := Static{
		{NodeID: "a", ClusterID: "c1", Addrs: []net.IP{net.ParseIP("10.0.0.1")}, Port: 8443},
		{NodeID: "b", ClusterID: "c2", Port: 8443},
		{NodeID: "c", Port: 8443},
	}
	ids := func(ps []Peer) (out []string) {
		for _, p := range ps {
			out = append(out, p.NodeID)
		}
		return out
	}
	got, _ := s.Find(context.Background(), "c1")
	if want := []string{"a", "c"}; !reflect.DeepEqual(ids(got), want) {
		t.Errorf("cluster c1: got %v, want %v", ids(got), want)
	}
	got, _ = s.Find(context.Background(), "")
	if len(got) != 3 {
		t.Errorf("any cluster: got %v, want all three", ids(got))
	}
	got[0].Addrs[0] = net.ParseIP("10.9.9.9")
	if !s[0].Addrs[0].Equal(net.ParseIP("10.0.0.1")) {
		t.Error("a caller changed the static list through Find's result")
	}
}
