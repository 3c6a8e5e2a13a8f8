package dm

import (
	"errors"
	"slices"
	"testing"

	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/transport"
)

func p(s string) lwm2m.Path { return lwm2m.MustParsePath(s) }

func rec(path string, v lwm2m.Value) lwm2m.Record { return lwm2m.Record{Path: p(path), Value: v} }

func u32(v uint32) *uint32 { return &v }

func fmtPtr(f lwm2m.ContentFormat) *lwm2m.ContentFormat { return &f }

// Core 1.2 §6.3 and §6.4 fix which path depths each operation takes.
func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		req  Request
		ok   bool
	}{
		{"read object", Request{Op: OpRead, Path: p("/3")}, true},
		{"read resource instance", Request{Op: OpRead, Path: p("/3/0/6/1")}, true},
		{"read root", Request{Op: OpRead, Path: p("/")}, false},
		{"discover resource", Request{Op: OpDiscover, Path: p("/3/0/1")}, true},
		{"discover resource instance", Request{Op: OpDiscover, Path: p("/3/0/6/0")}, false},
		{"write resource", Request{Op: OpWrite, Path: p("/1/0/1"), Records: []lwm2m.Record{rec("/1/0/1", lwm2m.Integer(60))}}, true},
		{"write without values", Request{Op: OpWrite, Path: p("/1/0/1")}, false},
		{"write object", Request{Op: OpWrite, Path: p("/1"), Records: []lwm2m.Record{rec("/1/0/1", lwm2m.Integer(60))}}, false},
		{"write value elsewhere", Request{Op: OpWrite, Path: p("/1/0/1"), Records: []lwm2m.Record{rec("/1/0/2", lwm2m.Integer(60))}}, false},
		{"partial update instance", Request{Op: OpWritePartial, Path: p("/1/0"), Records: []lwm2m.Record{rec("/1/0/1", lwm2m.Integer(60))}}, true},
		{"partial update resource instance", Request{Op: OpWritePartial, Path: p("/3/0/6/0"), Records: []lwm2m.Record{rec("/3/0/6/0", lwm2m.Integer(1))}}, false},
		{"attributes", Request{Op: OpWriteAttributes, Path: p("/3/0/9"), Attributes: &Attributes{Pmin: u32(10)}}, true},
		{"attributes missing", Request{Op: OpWriteAttributes, Path: p("/3/0/9")}, false},
		{"execute resource", Request{Op: OpExecute, Path: p("/3/0/4")}, true},
		{"execute instance", Request{Op: OpExecute, Path: p("/3/0")}, false},
		{"create on object", Request{Op: OpCreate, Path: p("/9"), Records: []lwm2m.Record{rec("/9/1/0", lwm2m.String("app"))}}, true},
		{"create on instance", Request{Op: OpCreate, Path: p("/9/1")}, false},
		{"delete instance", Request{Op: OpDelete, Path: p("/9/1")}, true},
		{"delete object", Request{Op: OpDelete, Path: p("/9")}, false},
		{"unknown op", Request{Op: "format-disk", Path: p("/3/0")}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := validate(tc.req)
			if tc.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestBuildMessage(t *testing.T) {
	modern := &registration.Registration{Version: "1.1", RootPath: "/", ContentFormats: []uint16{110, 11542}}
	legacy := &registration.Registration{Version: "1.0", RootPath: "/"}
	silent := &registration.Registration{Version: "1.2", RootPath: "/"}
	alt := &registration.Registration{Version: "1.1", RootPath: "/lwm2m", ContentFormats: []uint16{112}}
	tests := []struct {
		name    string
		reg     *registration.Registration
		req     Request
		code    transport.Code
		path    string
		accept  int
		cf      int
		observe int64
		query   []string
	}{
		{"read prefers declared SenML JSON over TLV", modern, Request{Op: OpRead, Path: p("/3/0")}, transport.GET, "/3/0", 110, -1, -1, nil},
		{"read with a chosen format", modern, Request{Op: OpRead, Path: p("/3/0/3"), Format: fmtPtr(lwm2m.FormatText)}, transport.GET, "/3/0/3", 0, -1, -1, nil},
		{"read leaves a silent device its default", silent, Request{Op: OpRead, Path: p("/3/0")}, transport.GET, "/3/0", -1, -1, -1, nil},
		{"read under an alternate path", alt, Request{Op: OpRead, Path: p("/3/0/3")}, transport.GET, "/lwm2m/3/0/3", 112, -1, -1, nil},
		{"observe", modern, Request{Op: OpObserve, Path: p("/3/0/9")}, transport.GET, "/3/0/9", 110, -1, 0, nil},
		{"cancel observe", modern, Request{Op: OpCancelObserve, Path: p("/3/0/9")}, transport.GET, "/3/0/9", 110, -1, 1, nil},
		{"discover", modern, Request{Op: OpDiscover, Path: p("/3")}, transport.GET, "/3", 40, -1, -1, nil},
		{"write on a 1.0 device uses text for one value", legacy, Request{Op: OpWrite, Path: p("/1/0/1"), Records: []lwm2m.Record{rec("/1/0/1", lwm2m.Integer(60))}}, transport.PUT, "/1/0/1", -1, 0, -1, nil},
		{"write instance on a 1.0 device uses TLV", legacy, Request{Op: OpWrite, Path: p("/1/0"), Records: []lwm2m.Record{rec("/1/0/1", lwm2m.Integer(60))}}, transport.PUT, "/1/0", -1, 11542, -1, nil},
		{"partial update is POST", modern, Request{Op: OpWritePartial, Path: p("/1/0"), Records: []lwm2m.Record{rec("/1/0/1", lwm2m.Integer(60))}}, transport.POST, "/1/0", -1, 110, -1, nil},
		{"write attributes", modern, Request{Op: OpWriteAttributes, Path: p("/3/0/9"), Attributes: &Attributes{Pmin: u32(5), Pmax: u32(60), Clear: []string{"st"}}}, transport.PUT, "/3/0/9", -1, -1, -1, []string{"pmin=5", "pmax=60", "st"}},
		{"execute with arguments", modern, Request{Op: OpExecute, Path: p("/3/0/4"), Args: "0='x'"}, transport.POST, "/3/0/4", -1, 0, -1, nil},
		{"delete", modern, Request{Op: OpDelete, Path: p("/9/1")}, transport.DELETE, "/9/1", -1, -1, -1, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg, _, err := buildMessage(tc.reg, tc.req, nil)
			if err != nil {
				t.Fatal(err)
			}
			if msg.Code != tc.code || msg.Path != tc.path || msg.Accept != tc.accept || msg.ContentFormat != tc.cf || msg.Observe != tc.observe || !slices.Equal(msg.Query, tc.query) {
				t.Fatalf("got code %s path %s accept %d cf %d observe %d query %v", msg.Code, msg.Path, msg.Accept, msg.ContentFormat, msg.Observe, msg.Query)
			}
		})
	}
	if _, _, err := buildMessage(modern, Request{Op: OpWriteAttributes, Path: p("/3/0/9"), Attributes: &Attributes{Clear: []string{"bogus"}}}, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown attribute: err = %v", err)
	}
}

func TestDecodeResult(t *testing.T) {
	resp := transport.NewMessage(transport.NotFound)
	resp.Payload = []byte("no such resource")
	_, err := decodeResult(Request{Op: OpRead, Path: p("/3/0/99")}, 0, resp, nil)
	var de *DeviceError
	if !errors.As(err, &de) || de.Code != "4.04" || de.Msg != "no such resource" {
		t.Fatalf("err = %v", err)
	}
	ok := transport.NewMessage(transport.Content)
	ok.ContentFormat = 0
	ok.Payload = []byte("1.0.0")
	res, err := decodeResult(Request{Op: OpRead, Path: p("/3/0/3")}, 0, ok, nil)
	if err != nil || len(res.Records) != 1 || res.Records[0].Value.Text() != "1.0.0" {
		t.Fatalf("res = %+v, %v", res, err)
	}
	garbled := transport.NewMessage(transport.Content)
	garbled.ContentFormat = int(lwm2m.FormatTLV)
	garbled.Payload = []byte{0xc8, 0x00, 0x40}
	res, err = decodeResult(Request{Op: OpRead, Path: p("/3/0")}, lwm2m.FormatTLV, garbled, nil)
	if err == nil || res == nil || string(res.Payload) != string(garbled.Payload) {
		t.Fatalf("undecodable answer: res = %+v, err = %v", res, err)
	}
}
