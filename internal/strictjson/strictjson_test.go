package strictjson_test

import (
	"encoding/json"
	"errors"
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

func FuzzUnmarshal(f *testing.F) {
	for _, s := range []string{`{"id":"a","contacts":[{"name":"x"}]}`, `{"ALARM_TYPE":1}`, `{"a":1,"a":2}`, `[]]`, `{"raw":[[[{}]]]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var strict, loose body
		err := strictjson.Unmarshal(data, &strict, strictjson.Options{})
		if err == nil {
			// What strictjson accepts, encoding/json reads the same way.
			if lerr := json.Unmarshal(data, &loose); lerr != nil {
				t.Fatalf("strictjson accepted %q, encoding/json refused it: %v", data, lerr)
			}
		}
	})
}
