package cluster

import (
	"fmt"
	"strings"
)

// sprintfTrim formats like fmt.Sprintf and drops a trailing newline.
func sprintfTrim(f string, a ...any) string {
	return strings.TrimRight(fmt.Sprintf(f, a...), "\n")
}
