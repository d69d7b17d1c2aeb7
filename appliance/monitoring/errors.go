package monitoring

import (
	"errors"
	"fmt"
)

// Sentinel errors of the monitoring package. Compare with errors.Is.
var (
	// ErrMalformedCommand refuses a command whose body cannot be decoded.
	ErrMalformedCommand = errors.New("malformed command")
)

// FieldError refuses a command because one of its fields is invalid. The
// message names the field, so it can be shown to the user as it is.
type FieldError struct {
	Field  string // the field's name in the command's JSON body, such as "key"
	Reason string // what is wrong, such as "must not be empty"
}

func (e *FieldError) Error() string { return e.Field + " " + e.Reason }

func fieldErrorf(field, format string, a ...any) *FieldError {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, a...)}
}
