package provisioning_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/provisioning"
)

// A join token is pasted by an administrator, or sent to a member by a
// joiner: ParseJoinToken refuses anything else with ErrBadJoinToken, and a
// token it takes reads the same when written out again.
func FuzzParseJoinToken(f *testing.F) {
	ca, err := provisioning.NewCA("c-north", time.Now())
	if err != nil {
		f.Fatal(err)
	}
	tok, err := provisioning.NewJoinToken(ca, []string{"10.0.0.11:8443", "vigil-2.site.example:8443", "[fe80::1]:8443"}, 0, 3, now)
	if err != nil {
		f.Fatal(err)
	}
	bare, err := provisioning.NewJoinToken(ca, nil, 0, 0, now)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{tok.String(), " " + bare.String() + "\n", tok.String()[:40],
		enc(`{"c":"c-north","x":1}`), enc(`{"c":"c-north","f":"` + ca.Fingerprint() + `","a":["x:0"]}`),
		enc(`{"c":"c-north","f":"` + ca.Fingerprint() + `","i":"0123456789abcdef","s":"` + strings.Repeat("ab", 32) + `","e":1900000000,"n":1} {}`)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := provisioning.ParseJoinToken(s)
		if err != nil {
			if !errors.Is(err, provisioning.ErrBadJoinToken) {
				t.Fatalf("refused %q with %v, not ErrBadJoinToken", s, err)
			}
			return
		}
		again, err := provisioning.ParseJoinToken(got.String())
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("%+v, written out again, reads as %+v, %v", got, again, err)
		}
	})
}
