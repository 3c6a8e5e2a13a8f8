// Package codectest holds what the codec tests share: a fake object model and a record
// comparison that treats floats bit-for-bit and times by instant.
package codectest

import (
	"fmt"
	"strings"
	"time"

	"github.com/lwota/lwota/server/lwm2m"
)

// Model is a fake resolver keyed by object and resource id.
type Model map[[2]uint16]lwm2m.Type

// ResourceType implements every codec's Resolver.
func (m Model) ResourceType(objectID, resourceID uint16) (lwm2m.Type, bool) {
	t, ok := m[[2]uint16{objectID, resourceID}]
	return t, ok
}

// AllTypesObject is a made-up object id whose resources 0..8 cover every data type.
const AllTypesObject = 32769

// NewModel types Object 2 (Access Control), Object 3 (Device) and AllTypesObject.
func NewModel() Model {
	m := Model{}
	for r, t := range map[uint16]lwm2m.Type{0: lwm2m.TypeInteger, 1: lwm2m.TypeInteger, 2: lwm2m.TypeInteger, 3: lwm2m.TypeInteger} {
		m[[2]uint16{2, r}] = t
	}
	device := map[uint16]lwm2m.Type{
		0: lwm2m.TypeString, 1: lwm2m.TypeString, 2: lwm2m.TypeString, 3: lwm2m.TypeString,
		4: lwm2m.TypeNone, 5: lwm2m.TypeNone, 6: lwm2m.TypeInteger, 7: lwm2m.TypeInteger,
		8: lwm2m.TypeInteger, 9: lwm2m.TypeInteger, 10: lwm2m.TypeInteger, 11: lwm2m.TypeInteger,
		12: lwm2m.TypeNone, 13: lwm2m.TypeTime, 14: lwm2m.TypeString, 15: lwm2m.TypeString,
		16: lwm2m.TypeString, 17: lwm2m.TypeString, 18: lwm2m.TypeString, 19: lwm2m.TypeString,
		20: lwm2m.TypeInteger, 21: lwm2m.TypeInteger, 22: lwm2m.TypeObjlnk,
	}
	for r, t := range device {
		m[[2]uint16{3, r}] = t
	}
	all := []lwm2m.Type{lwm2m.TypeString, lwm2m.TypeInteger, lwm2m.TypeUnsignedInteger, lwm2m.TypeFloat,
		lwm2m.TypeBoolean, lwm2m.TypeOpaque, lwm2m.TypeTime, lwm2m.TypeObjlnk, lwm2m.TypeCorelnk}
	for i, t := range all {
		m[[2]uint16{AllTypesObject, uint16(i)}] = t
	}
	return m
}

// Device is the Object 3 instance of the OMA TLV and SenML examples, in wire order.
func Device() []lwm2m.Record {
	p := func(s string) lwm2m.Path { return lwm2m.MustParsePath(s) }
	return []lwm2m.Record{
		{Path: p("/3/0/0"), Value: lwm2m.String("Open Mobile Alliance")},
		{Path: p("/3/0/1"), Value: lwm2m.String("Lightweight M2M Client")},
		{Path: p("/3/0/2"), Value: lwm2m.String("345000123")},
		{Path: p("/3/0/3"), Value: lwm2m.String("1.0")},
		{Path: p("/3/0/6/0"), Value: lwm2m.Integer(1)},
		{Path: p("/3/0/6/1"), Value: lwm2m.Integer(5)},
		{Path: p("/3/0/7/0"), Value: lwm2m.Integer(3800)},
		{Path: p("/3/0/7/1"), Value: lwm2m.Integer(5000)},
		{Path: p("/3/0/8/0"), Value: lwm2m.Integer(125)},
		{Path: p("/3/0/8/1"), Value: lwm2m.Integer(900)},
		{Path: p("/3/0/9"), Value: lwm2m.Integer(100)},
		{Path: p("/3/0/10"), Value: lwm2m.Integer(15)},
		{Path: p("/3/0/11/0"), Value: lwm2m.Integer(0)},
		{Path: p("/3/0/13"), Value: lwm2m.Time(time.Unix(1367491215, 0))},
		{Path: p("/3/0/14"), Value: lwm2m.String("+02:00")},
		{Path: p("/3/0/16"), Value: lwm2m.String("U")},
	}
}

// AllTypes is one instance of AllTypesObject holding each type once, with values that
// stress widths (negative, above 32 bits, non-float32 floats).
func AllTypes() []lwm2m.Record {
	p := func(r uint16) lwm2m.Path { return lwm2m.NewPath(AllTypesObject, 1, r) }
	return []lwm2m.Record{
		{Path: p(0), Value: lwm2m.String("héllo \"world\" <&>")},
		{Path: p(1), Value: lwm2m.Integer(-1 << 40)},
		{Path: p(2), Value: lwm2m.Unsigned(1<<64 - 1)},
		{Path: p(3), Value: lwm2m.Float(-0.1)},
		{Path: p(4), Value: lwm2m.Boolean(true)},
		{Path: p(5), Value: lwm2m.Opaque([]byte{0, 1, 0xfe, 0xff})},
		{Path: p(6), Value: lwm2m.Time(time.Unix(1700000000, 0))},
		{Path: p(7), Value: lwm2m.Objlnk(3, 65535)},
		{Path: p(8), Value: lwm2m.Corelnk("</3/0>;ver=1.1")},
	}
}

// Diff describes how got differs from want, or returns "" when they are equal.
// Times compare to the microsecond, the precision SenML's float seconds keep.
func Diff(got, want []lwm2m.Record) string {
	var b strings.Builder
	if len(got) != len(want) {
		fmt.Fprintf(&b, "got %d records, want %d\n", len(got), len(want))
	}
	for i := 0; i < len(got) || i < len(want); i++ {
		switch {
		case i >= len(got):
			fmt.Fprintf(&b, "  missing %s = %s\n", want[i].Path, want[i].Value)
		case i >= len(want):
			fmt.Fprintf(&b, "  extra   %s = %s\n", got[i].Path, got[i].Value)
		case got[i].Path != want[i].Path || !got[i].Value.Equal(want[i].Value) || !sameTime(got[i].Time, want[i].Time):
			fmt.Fprintf(&b, "  [%d] got %s = %s @%v, want %s = %s @%v\n", i,
				got[i].Path, got[i].Value, got[i].Time, want[i].Path, want[i].Value, want[i].Time)
		}
	}
	return b.String()
}

func sameTime(a, b time.Time) bool {
	if a.IsZero() || b.IsZero() {
		return a.IsZero() == b.IsZero()
	}
	d := a.Sub(b)
	return d < time.Microsecond && d > -time.Microsecond
}
