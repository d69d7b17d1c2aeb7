package strictjson_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/internal/strictjson"
)

type inner struct {
	Name  string `json:"name"`
	Phone string `json:"phone,omitempty"`
}

type Embedded struct {
	ID string `json:"id"`
}

type body struct {
	Embedded
	AlarmType string            `json:"alarm_type"`
	Contacts  []inner           `json:"contacts"`
	Org       *inner            `json:"org"`
	At        time.Time         `json:"at"`
	Raw       json.RawMessage   `json:"raw"`
	Labels    map[string]string `json:"labels"`
	Plain     int               // no tag: its JSON name is Plain
	Skipped   string            `json:"-"`
}

func TestUnmarshal_Accepts(t *testing.T) {
	var b body
	in := `{"id":"c1","alarm_type":"panic","contacts":[{"name":"A"},{"name":"B","phone":"1"}],` +
		`"org":{"name":"O"},"at":"2026-01-02T03:04:05Z","raw":{"x":1},"labels":{"a":"1","A":"2"},"Plain":3}` + " \n\t"
	if err := strictjson.Unmarshal([]byte(in), &b, strictjson.Options{DisallowUnknownFields: true}); err != nil {
		t.Fatal(err)
	}
	if b.ID != "c1" || b.AlarmType != "panic" || len(b.Contacts) != 2 || b.Org.Name != "O" || b.Plain != 3 || b.Labels["A"] != "2" {
		t.Fatalf("decoded %+v", b)
	}
}

// TestUnmarshal_Refusals: what encoding/json accepts and strictjson
// refuses, each naming the key at fault.
func TestUnmarshal_Refusals(t *testing.T) {
	for _, tc := range []struct {
		name, in, key, msg string
	}{
		{"duplicate key", `{"alarm_type":"test","alarm_type":"panic"}`, "alarm_type", "twice"},
		{"duplicate promoted key", `{"id":"a","id":"b"}`, "id", "twice"},
		{"duplicate nested key", `{"contacts":[{"name":"a"},{"name":"b","name":"c"}]}`, "contacts[1].name", "twice"},
		{"duplicate map key", `{"labels":{"a":"1","a":"2"}}`, "labels.a", "twice"},
		{"duplicate key under a RawMessage", `{"raw":{"x":1,"x":2}}`, "raw.x", "twice"},
		{"key in capitals", `{"ALARM_TYPE":"panic"}`, "ALARM_TYPE", `write "alarm_type"`},
		{"promoted key in capitals", `{"Id":"x"}`, "Id", `write "id"`},
		{"nested key in capitals", `{"org":{"Name":"x"}}`, "org.Name", `write "name"`},
		{"untagged field in lower case", `{"plain":1}`, "plain", `write "Plain"`},
		{"long s", "{\"label\u017f\":{}}", "label\u017f", `write "labels"`},
		{"stray bracket", `{"id":"a"}]`, "", "more after"},
		{"stray brace", `{"id":"a"}}`, "", "more after"},
		{"second object", `{"id":"a"} {"id":"b"}`, "", "more after"},
		{"deep nesting", `{"raw":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, "raw", "deeper"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b body
			err := strictjson.Unmarshal([]byte(tc.in), &b, strictjson.Options{})
			var se *strictjson.Error
			if !errors.As(err, &se) {
				t.Fatalf("Unmarshal(%s) = %v; want a *strictjson.Error", tc.in, err)
			}
			if tc.key != "" && !strings.HasPrefix(se.Key, tc.key) {
				t.Fatalf("error %q names key %q; want %q", err, se.Key, tc.key)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %q does not say %q", err, tc.msg)
			}
		})
	}
}

func TestUnmarshal_SyntaxAndTypeErrorsPassThrough(t *testing.T) {
	for _, in := range []string{``, `{`, `{"id":}`, `{"id":1}`, `[1,]`} {
		var b body
		if err := strictjson.Unmarshal([]byte(in), &b, strictjson.Options{}); err == nil {
			t.Errorf("Unmarshal(%q) accepted", in)
		}
	}
	var b body
	err := strictjson.Unmarshal([]byte(`{"nope":1}`), &b, strictjson.Options{DisallowUnknownFields: true})
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("an unknown field with DisallowUnknownFields: %v", err)
	}
	if err := strictjson.Unmarshal([]byte(`{"nope":1}`), &b, strictjson.Options{}); err != nil {
		t.Fatalf("an unknown field without DisallowUnknownFields: %v", err)
	}
}

// SkipUnknownFields: what is under a key Vigil does not read is not
// refused for its duplicates, but the keys it reads still are, and so are a
// key in the wrong case, bad syntax and deep nesting anywhere.
func TestUnmarshal_SkipUnknownFields(t *testing.T) {
	skip := strictjson.Options{SkipUnknownFields: true}
	for _, in := range []string{
		`{"id":"a","v2":{"x":1,"x":2}}`,
		`{"id":"a","pad":1,"pad":2}`,
		`{"org":{"name":"o","extra":[{"k":1,"k":1}]}}`,
	} {
		var b body
		if err := strictjson.Unmarshal([]byte(in), &b, skip); err != nil {
			t.Errorf("Unmarshal(%s) = %v; want it taken", in, err)
		} else if b.ID != "a" && b.Org == nil {
			t.Errorf("Unmarshal(%s) decoded %+v", in, b)
		}
		if err := strictjson.Unmarshal([]byte(in), &b, strictjson.Options{}); err == nil {
			t.Errorf("Unmarshal(%s) without SkipUnknownFields accepted it", in)
		}
	}
	for _, tc := range []struct{ in, key string }{
		{`{"id":"a","v2":{},"id":"b"}`, "id"},
		{`{"ID":"a","v2":{}}`, "ID"},
		{`{"v2":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, "v2"},
		{`{"org":{"name":"a","v2":[` + strings.Repeat(`{"a":`, 70) + "1" + strings.Repeat("}", 70) + `]}}`, "org.v2"},
	} {
		var b body
		err := strictjson.Unmarshal([]byte(tc.in), &b, skip)
		var se *strictjson.Error
		if !errors.As(err, &se) || se.Key != tc.key {
			t.Errorf("Unmarshal(%.60s) = %v; want a *strictjson.Error for %q", tc.in, err, tc.key)
		}
	}
	for _, in := range []string{`{"v2":{"x":}}`, `{"v2":[1,}`, `{"v2":{"x":1}`} {
		var b body
		if err := strictjson.Unmarshal([]byte(in), &b, skip); err == nil {
			t.Errorf("Unmarshal(%s) accepted bad syntax under an unknown key", in)
		}
	}
}

// FuzzUnmarshal: what strictjson accepts, encoding/json reads the same
// way; SkipUnknownFields accepts at least what the default options accept,
// and reads it the same; a refusal of strictjson's own says why.
func FuzzUnmarshal(f *testing.F) {
	for _, s := range []string{`{"id":"a","contacts":[{"name":"x"}]}`, `{"ALARM_TYPE":1}`, `{"a":1,"a":2}`, `[]]`, `{"raw":[[[{}]]]}`,
		`{"id":"a","v2":{"x":1,"x":2}}`, `{"org":{"name":"o","extra":[{"k":1,"k":1}]}}`, `{"labels":{"a":"1","a":"2"}}`, `{"at":"2026-01-02T03:04:05+01:00"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var strict, skip, loose body
		err := strictjson.Unmarshal(data, &strict, strictjson.Options{})
		serr := strictjson.Unmarshal(data, &skip, strictjson.Options{SkipUnknownFields: true})
		for _, e := range []error{err, serr} {
			var se *strictjson.Error
			if errors.As(e, &se) && se.Msg == "" {
				t.Fatalf("refusal without a reason: %#v", se)
			}
		}
		if err == nil && serr != nil {
			t.Fatalf("SkipUnknownFields refused %q, which the default options accept: %v", data, serr)
		}
		if serr != nil {
			return
		}
		if lerr := json.Unmarshal(data, &loose); lerr != nil {
			t.Fatalf("strictjson accepted %q, encoding/json refused it: %v", data, lerr)
		}
		if !reflect.DeepEqual(skip, loose) || err == nil && !reflect.DeepEqual(strict, loose) {
			t.Fatalf("%q read as %+v (strict %+v), encoding/json read %+v", data, skip, strict, loose)
		}
	})
}
