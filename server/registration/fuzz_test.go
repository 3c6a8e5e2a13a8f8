package registration

import (
	"errors"
	"testing"
)

// FuzzParseRegister feeds Register queries and object lists to the parsers a device reaches first.
// A refusal must be one of the registry's typed errors (so it maps to a 4.xx), never a panic.
func FuzzParseRegister(f *testing.F) {
	f.Add("ep=urn:imei:1&lt=300&lwm2m=1.1&b=U", `</>;rt="oma.lwm2m";ct="110 11542",</1/0>,</3/0>,</5>;ver=1.1,</5/0>`)
	f.Add("ep=a&b=UQ", "</1/0>,</3/0>")
	f.Add("ep=a&Q&lt=-1", "</lwm2m>;rt=\"oma.lwm2m\",</lwm2m/3/0>")
	f.Add("ep=", "<")
	f.Fuzz(func(t *testing.T, query, payload string) {
		var q []string
		start := 0
		for i := 0; i <= len(query); i++ {
			if i == len(query) || query[i] == '&' {
				q = append(q, query[start:i])
				start = i + 1
			}
		}
		if _, err := parseQuery(q); err != nil && !errors.Is(err, ErrBadRequest) {
			t.Fatalf("query error is not ErrBadRequest: %v", err)
		}
		ol, err := parseObjectList([]byte(payload), 1024)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("object list error is not typed: %v", err)
			}
			return
		}
		for _, o := range ol.objects {
			if o.Path.Len() < 1 || o.Path.Len() > 2 {
				t.Fatalf("accepted object link %s", o.Path)
			}
		}
	})
}
