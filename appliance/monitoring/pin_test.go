package monitoring

import (
	"strings"
	"testing"
)

func init() {
	// Cheap hashes for tests; TestPIN_DefaultParams covers the real ones.
	pinParams = PINParams{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
}

func mustHashPIN(t *testing.T, pin string) string {
	t.Helper()
	h, err := hashPIN(pin)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestPIN_HashAndCheck(t *testing.T) {
	h := mustHashPIN(t, "123456")
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("hash %q is not in the PHC argon2id format", h)
	}
	if !checkPIN(h, "123456") {
		t.Fatal("the right PIN does not match")
	}
	for _, wrong := range []string{"123457", "12345", "", "1234567"} {
		if checkPIN(h, wrong) {
			t.Fatalf("%q matches the hash of 123456", wrong)
		}
	}
	if h2 := mustHashPIN(t, "123456"); h2 == h {
		t.Fatal("two hashes of one PIN are equal: the salt is not random")
	}
	if checkPIN("", "123456") || checkPIN("$argon2id$garbage", "123456") {
		t.Fatal("an empty or broken hash matched")
	}
}

func TestPIN_DefaultParams(t *testing.T) {
	old := pinParams
	pinParams = DefaultPINParams
	defer func() { pinParams = old }()
	h := mustHashPIN(t, "2468")
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q", h)
	}
	if !checkPIN(h, "2468") || checkPIN(h, "8642") {
		t.Fatal("check with the default parameters is wrong")
	}
}

func TestPIN_Validate(t *testing.T) {
	for _, tc := range []struct {
		pin string
		ok  bool
	}{
		{"1234", true}, {"12345678", true}, {"123", false}, {"123456789", false},
		{"12a4", false}, {"", false}, {"١٢٣٤", false}, // Arabic-Indic digits are not ASCII digits
	} {
		err := validatePIN("pin", tc.pin)
		if (err == nil) != tc.ok {
			t.Errorf("validatePIN(%q) = %v, want ok=%v", tc.pin, err, tc.ok)
		}
		if re, isRule := err.(*RuleError); err != nil && (!isRule || re.Field != "pin" || re.Code != CodeInvalid) {
			t.Errorf("validatePIN(%q) = %#v, want an invalid RuleError naming pin", tc.pin, err)
		}
	}
}

func TestPIN_CheckPINsDoesBoth(t *testing.T) {
	w := &Worker{SafePINHash: mustHashPIN(t, "1111"), DuressPINHash: mustHashPIN(t, "2222")}
	for pin, want := range map[string]pinOutcome{"1111": pinSafe, "2222": pinDuress, "3333": pinWrong} {
		if got := checkPINs(w, pin); got != want {
			t.Errorf("checkPINs(%s) = %q, want %q", pin, got, want)
		}
	}
	if got := checkPINs(&Worker{}, "1111"); got != pinWrong {
		t.Errorf("a worker without PINs: %q", got)
	}
}
