package valueconv

import (
	"testing"

	"github.com/lwota/lwota/server/lwm2m"
)

func TestCoerce(t *testing.T) {
	tests := []struct {
		name string
		in   lwm2m.Value
		want lwm2m.Type
		out  lwm2m.Value
		ok   bool
	}{
		{"unknown type keeps value", lwm2m.Integer(1), lwm2m.TypeNone, lwm2m.Integer(1), true},
		{"integer to time", lwm2m.Integer(5), lwm2m.TypeTime, lwm2m.Value{Type: lwm2m.TypeTime, Int: 5}, true},
		{"integer to unsigned", lwm2m.Integer(5), lwm2m.TypeUnsignedInteger, lwm2m.Unsigned(5), true},
		{"negative to unsigned", lwm2m.Integer(-5), lwm2m.TypeUnsignedInteger, lwm2m.Value{}, false},
		{"big unsigned to integer", lwm2m.Unsigned(1 << 63), lwm2m.TypeInteger, lwm2m.Value{}, false},
		{"integral float to integer", lwm2m.Float(3), lwm2m.TypeInteger, lwm2m.Integer(3), true},
		{"fraction to integer", lwm2m.Float(3.5), lwm2m.TypeInteger, lwm2m.Value{}, false},
		{"float 2^63 to integer", lwm2m.Float(1 << 63), lwm2m.TypeInteger, lwm2m.Value{}, false},
		{"integer to float", lwm2m.Integer(-2), lwm2m.TypeFloat, lwm2m.Float(-2), true},
		{"string to objlnk", lwm2m.String("3:0"), lwm2m.TypeObjlnk, lwm2m.Objlnk(3, 0), true},
		{"bad objlnk", lwm2m.String("3:"), lwm2m.TypeObjlnk, lwm2m.Value{}, false},
		{"string to corelnk", lwm2m.String("</3>"), lwm2m.TypeCorelnk, lwm2m.Corelnk("</3>"), true},
		{"boolean to integer", lwm2m.Boolean(true), lwm2m.TypeInteger, lwm2m.Value{}, false},
		{"string to opaque", lwm2m.String("x"), lwm2m.TypeOpaque, lwm2m.Value{}, false},
		{"no value stays", lwm2m.Value{}, lwm2m.TypeInteger, lwm2m.Value{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, ok := Coerce(tc.in, tc.want)
			if ok != tc.ok || (ok && !out.Equal(tc.out)) {
				t.Fatalf("Coerce(%s, %s) = %s, %v; want %s, %v", tc.in, tc.want, out, ok, tc.out, tc.ok)
			}
		})
	}
}
