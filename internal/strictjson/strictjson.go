// Package strictjson decodes JSON that other programs send (the REST API's
// bodies, the devices' payloads) more strictly than encoding/json: one JSON
// value and nothing after it, no key twice in an object, and no key that
// matches a field's name only when case is ignored. encoding/json takes the
// last of two equal keys, stops reading at the end of the first value, and
// matches "ALARM_TYPE" to the field alarm_type: three ways for a sender
// and Vigil to read the same bytes differently.
//
// It imports nothing of Vigil: the API (ui/api) and the device protocol
// (broker) share it.
package strictjson

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"sync"
)

// MaxDepth is how deeply objects and arrays may nest.
const MaxDepth = 64

// Error is a JSON text refused for its shape rather than its syntax: Key
// names the key at fault as a path from the top ("org.contacts[0].name"),
// empty when the fault is not at a key.
type Error struct {
	Key string
	Msg string
}

func (e *Error) Error() string {
	if e.Key == "" {
		return e.Msg
	}
	return fmt.Sprintf("key %q: %s", e.Key, e.Msg)
}

// Options changes what Unmarshal accepts.
type Options struct {
	// DisallowUnknownFields refuses a key that is no field of the struct it
	// is decoded into (json.Decoder.DisallowUnknownFields).
	DisallowUnknownFields bool
	// SkipUnknownFields leaves the value of a key that is no field of the
	// struct it is decoded into unchecked but for its syntax and nesting:
	// a key twice in it, or the unknown key itself twice, is not refused.
	// The devices' payloads use it: firmware may send fields Vigil does not
	// read, and a message must not be refused for what is in them.
	// Ignored with DisallowUnknownFields.
	SkipUnknownFields bool
}

// Unmarshal decodes data, one JSON value, into v as json.Unmarshal does,
// after checking that data holds nothing after the value but white space,
// no object has a key twice, no key matches a field of v's type only when
// case is ignored, and nothing nests deeper than MaxDepth. A refusal for
// one of these is an *Error; a syntax or type error is encoding/json's.
func Unmarshal(data []byte, v any, opt Options) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return errors.New("strictjson: Unmarshal needs a non-nil pointer")
	}
	if err := check(data, rv.Type().Elem(), opt.SkipUnknownFields && !opt.DisallowUnknownFields); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if opt.DisallowUnknownFields {
		dec.DisallowUnknownFields()
	}
	return dec.Decode(v)
}

// Check checks data as Unmarshal does before decoding it into a value of
// type t; t nil checks the duplicate keys, the nesting and the trailing
// data alone.
func Check(data []byte, t reflect.Type) error { return check(data, t, false) }

func check(data []byte, t reflect.Type, skipUnknown bool) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	c := checker{dec: dec, skipUnknown: skipUnknown}
	if err := c.value(t, "", 0); err != nil {
		if err == io.EOF && len(bytes.TrimSpace(data)) > 0 {
			return io.ErrUnexpectedEOF // cut short, as encoding/json says it
		}
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return &Error{Msg: "there is more after the JSON value (at byte " + strconv.FormatInt(dec.InputOffset(), 10) + ")"}
	}
	return nil
}

type checker struct {
	dec         *json.Decoder
	skipUnknown bool // Options.SkipUnknownFields
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// value checks the next JSON value, to be decoded into type t (nil: any)
// at path, depth levels down.
func (c *checker) value(t reflect.Type, path string, depth int) error {
	tok, err := c.dec.Token()
	if err != nil {
		return err
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return nil // a string, number, bool or null
	}
	if depth >= MaxDepth {
		return &Error{Key: path, Msg: fmt.Sprintf("nests deeper than %d objects and arrays", MaxDepth)}
	}
	t = decodedAs(t)
	switch delim {
	case '[':
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; c.dec.More(); i++ {
			if err := c.value(elem, fmt.Sprintf("%s[%d]", path, i), depth+1); err != nil {
				return err
			}
		}
	case '{':
		var fields map[string]reflect.Type
		var elem reflect.Type
		if t != nil {
			switch t.Kind() {
			case reflect.Struct:
				fields = fieldsOf(t)
			case reflect.Map:
				elem = t.Elem()
			}
		}
		seen := map[string]bool{}
		for c.dec.More() {
			tok, err := c.dec.Token()
			if err != nil {
				return err
			}
			key, _ := tok.(string)
			at := key
			if path != "" {
				at = path + "." + key
			}
			if c.skipUnknown && fields != nil {
				if _, known := fields[key]; !known {
					if _, folded := foldMatch(fields, key); !folded {
						if err := c.skip(at, depth+1); err != nil {
							return err
						}
						continue
					}
				}
			}
			if seen[key] {
				return &Error{Key: at, Msg: "appears twice in one object"}
			}
			seen[key] = true
			next := elem
			if fields != nil {
				ft, exact := fields[key]
				if !exact {
					if name, ok := foldMatch(fields, key); ok {
						return &Error{Key: at, Msg: fmt.Sprintf("is not a field; keys are case-sensitive: write %q", name)}
					}
				}
				next = ft
			}
			if err := c.value(next, at, depth+1); err != nil {
				return err
			}
		}
	}
	_, err = c.dec.Token() // the closing delimiter
	return err
}

// skip reads the next JSON value, at path, depth levels down, checking
// only its nesting (the decoder checks its syntax).
func (c *checker) skip(path string, depth int) error {
	for open := 0; ; {
		tok, err := c.dec.Token()
		if err != nil {
			return err
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '[', '{':
				if depth+open >= MaxDepth {
					return &Error{Key: path, Msg: fmt.Sprintf("nests deeper than %d objects and arrays", MaxDepth)}
				}
				open++
			default:
				open--
			}
		}
		if open == 0 {
			return nil
		}
	}
}

// decodedAs is the type whose JSON shape a value of type t takes: t
// without its pointers, or nil when t decodes itself (time.Time, a
// json.RawMessage) and its fields say nothing of its JSON.
func decodedAs(t reflect.Type) reflect.Type {
	for t != nil {
		if t.Implements(jsonUnmarshaler) || reflect.PointerTo(t).Implements(jsonUnmarshaler) ||
			t.Kind() != reflect.Map && (t.Implements(textUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler)) {
			return nil
		}
		if t.Kind() != reflect.Pointer {
			return t
		}
		t = t.Elem()
	}
	return nil
}

// foldMatch returns the field name that key matches when case is ignored.
func foldMatch(fields map[string]reflect.Type, key string) (string, bool) {
	for name := range fields {
		if strings.EqualFold(name, key) {
			return name, true
		}
	}
	return "", false
}

var fieldCache sync.Map // reflect.Type -> map[string]reflect.Type

// fieldsOf returns the JSON names of struct type t's fields, with their
// types, as encoding/json sees them: the tag's name or the Go name,
// exported fields only, and the fields of embedded structs promoted.
func fieldsOf(t reflect.Type) map[string]reflect.Type {
	if f, ok := fieldCache.Load(t); ok {
		return f.(map[string]reflect.Type)
	}
	out := map[string]reflect.Type{}
	addFields(out, t, map[reflect.Type]bool{})
	fieldCache.Store(t, out)
	return out
}

func addFields(out map[string]reflect.Type, t reflect.Type, visited map[reflect.Type]bool) {
	if visited[t] {
		return
	}
	visited[t] = true
	var embedded []reflect.Type
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			et := f.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				embedded = append(embedded, et)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if _, ok := out[name]; !ok {
			out[name] = f.Type
		}
	}
	// The fields of embedded structs after the struct's own: the shallower
	// field wins, as in encoding/json.
	for _, et := range embedded {
		addFields(out, et, visited)
	}
}
