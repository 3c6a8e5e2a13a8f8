package lwm2m

import (
	"errors"
	"strconv"
	"strings"
)

// ErrInvalidDefinition matches (errors.Is) every *DefinitionError: an object definition that
// Model.Add refused, or a DDF file that ParseDDF or Model.LoadDDFDir could not accept.
var ErrInvalidDefinition = errors.New("lwm2m: invalid object definition")

// DefinitionError says where a definition is wrong, down to the DDF element, so an operator
// can fix the file without guessing. It is typed because callers (the CLI, the API) show the
// file and field to a person; code only needs errors.Is(err, ErrInvalidDefinition).
type DefinitionError struct {
	File     string // DDF file name; empty for ParseDDF on a bare reader and for Model.Add
	Object   int    // object id, or -1 when the object id is not known (missing, garbled)
	Version  string // object version when known
	Resource int    // resource id, or -1 when the problem is at object or file level
	Field    string // DDF element or attribute: "ObjectID", "Item ID", "Type", ...; empty for the file itself
	Err      error  // what is wrong
}

func (e *DefinitionError) Error() string {
	var b strings.Builder
	b.WriteString("lwm2m: ")
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	if e.Object >= 0 {
		b.WriteString("object ")
		b.WriteString(strconv.Itoa(e.Object))
		if e.Version != "" {
			b.WriteString(" v")
			b.WriteString(e.Version)
		}
		b.WriteString(": ")
	}
	if e.Resource >= 0 {
		b.WriteString("resource ")
		b.WriteString(strconv.Itoa(e.Resource))
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap gives the cause, such as an *xml.SyntaxError or an *fs.PathError.
func (e *DefinitionError) Unwrap() error { return e.Err }

// Is makes every DefinitionError match ErrInvalidDefinition.
func (e *DefinitionError) Is(target error) bool { return target == ErrInvalidDefinition }
