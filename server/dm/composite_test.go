package dm

import (
	"encoding/hex"
	"errors"
	"testing"

	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/transport"
)

func TestValidateComposite(t *testing.T) {
	three := []lwm2m.Path{p("/3/0/3"), p("/5/0/3"), p("/5/0/5")}
	tests := []struct {
		name string
		req  Request
		ok   bool
	}{
		{"read three paths", Request{Op: OpReadComposite, Path: lwm2m.RootPath, Paths: three}, true},
		{"read without paths", Request{Op: OpReadComposite, Path: lwm2m.RootPath}, false},
		{"read on a path", Request{Op: OpReadComposite, Path: p("/3"), Paths: three}, false},
		{"read the root", Request{Op: OpReadComposite, Path: lwm2m.RootPath, Paths: []lwm2m.Path{lwm2m.RootPath}}, false},
		{"read 65 paths", Request{Op: OpReadComposite, Path: lwm2m.RootPath, Paths: make([]lwm2m.Path, 65)}, false},
		{"write two resources", Request{Op: OpWriteComposite, Path: lwm2m.RootPath,
			Records: []lwm2m.Record{rec("/1/0/1", lwm2m.Integer(60)), rec("/1/0/3", lwm2m.Integer(5))}}, true},
		{"write nothing", Request{Op: OpWriteComposite, Path: lwm2m.RootPath}, false},
		{"write an instance", Request{Op: OpWriteComposite, Path: lwm2m.RootPath,
			Records: []lwm2m.Record{{Path: p("/1/0"), Value: lwm2m.Integer(1)}}}, false},
		{"paths on a plain read", Request{Op: OpRead, Path: p("/3/0"), Paths: three}, false},
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

// TestCore_6_3_1_CompositeMessages checks the CoAP shape of Read-Composite (FETCH, path list in
// SenML, Accept the answer's format) and Write-Composite (iPATCH, records) for each kind of
// registration (LwM2M 1.1 Transport §6.3.1, §6.3.3; RFC 8132).
func TestCore_6_3_1_CompositeMessages(t *testing.T) {
	cbor := &registration.Registration{Endpoint: "c", Version: "1.1", RootPath: "/", ContentFormats: []uint16{112, 11542}}
	jsonOnly := &registration.Registration{Endpoint: "j", Version: "1.1", RootPath: "/", ContentFormats: []uint16{110}}
	lwcbor := &registration.Registration{Endpoint: "l", Version: "1.2", RootPath: "/lwm2m", ContentFormats: []uint16{11544, 110}}
	three := []lwm2m.Path{p("/3/0/3"), p("/5/0/3"), p("/5/0/5")}
	read := Request{Op: OpReadComposite, Path: lwm2m.RootPath, Paths: three}
	write := Request{Op: OpWriteComposite, Path: lwm2m.RootPath,
		Records: []lwm2m.Record{rec("/1/0/1", lwm2m.Integer(60)), rec("/1/0/3", lwm2m.Integer(5))}}
	tests := []struct {
		name    string
		reg     *registration.Registration
		req     Request
		code    transport.Code
		path    string
		cf      int
		accept  int
		payload string // hex, or text for JSON
	}{
		{"read senml-cbor", cbor, read, transport.FETCH, "/", 112, 112,
			"83a100662f332f302f33a100662f352f302f33a100662f352f302f35"},
		{"read senml-json", jsonOnly, read, transport.FETCH, "/", 110, 110,
			`[{"n":"/3/0/3"},{"n":"/5/0/3"},{"n":"/5/0/5"}]`},
		{"read lwm2m-cbor answers, path list in senml-json, under the alternate path", lwcbor, read, transport.FETCH, "/lwm2m", 110, 11544,
			`[{"n":"/3/0/3"},{"n":"/5/0/3"},{"n":"/5/0/5"}]`},
		{"write senml-json", jsonOnly, write, transport.IPATCH, "/", 110, -1,
			`[{"n":"/1/0/1","v":60},{"n":"/1/0/3","v":5}]`},
		// [{0: "/1/0/1", 2: 60}, {0: "/1/0/3", 2: 5}]
		{"write senml-cbor", cbor, write, transport.IPATCH, "/", 112, -1,
			"82a200662f312f302f3102183ca200662f312f302f330205"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg, _, err := buildMessage(tc.reg, tc.req, nil)
			if err != nil {
				t.Fatal(err)
			}
			if msg.Code != tc.code || msg.Path != tc.path || msg.ContentFormat != tc.cf || msg.Accept != tc.accept || msg.Observe != -1 {
				t.Fatalf("got %s %q cf=%d accept=%d observe=%d, want %s %q cf=%d accept=%d",
					msg.Code, msg.Path, msg.ContentFormat, msg.Accept, msg.Observe, tc.code, tc.path, tc.cf, tc.accept)
			}
			got := string(msg.Payload)
			if tc.cf == 112 {
				got = hex.EncodeToString(msg.Payload)
			}
			if got != tc.payload {
				t.Fatalf("payload %s, want %s", got, tc.payload)
			}
		})
	}
}

func TestCompositeFormatRefusals(t *testing.T) {
	legacy := &registration.Registration{Endpoint: "old", Version: "1.0", RootPath: "/", ContentFormats: []uint16{112}}
	silent := &registration.Registration{Endpoint: "quiet", Version: "1.1", RootPath: "/"}
	tlvOnly := &registration.Registration{Endpoint: "tlv", Version: "1.1", RootPath: "/", ContentFormats: []uint16{11542}}
	read := Request{Op: OpReadComposite, Path: lwm2m.RootPath, Paths: []lwm2m.Path{p("/3/0/3")}}
	withTLV := read
	withTLV.Format = fmtPtr(lwm2m.FormatTLV)
	withCBOR := read
	withCBOR.Format = fmtPtr(lwm2m.FormatSenMLCBOR)
	tests := []struct {
		name string
		reg  *registration.Registration
		req  Request
		ok   bool
	}{
		{"1.0 device", legacy, read, false},
		{"1.0 device, format given", legacy, withCBOR, false},
		{"1.1 device declaring nothing", silent, read, false},
		{"1.1 device declaring nothing, format given", silent, withCBOR, true},
		{"1.1 device declaring only TLV", tlvOnly, read, false},
		{"TLV asked for", tlvOnly, withTLV, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := buildMessage(tc.reg, tc.req, nil)
			if tc.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
	if f, ok := CompositeFormat(tlvOnly); ok {
		t.Fatalf("CompositeFormat(TLV only) = %v, true", f)
	}
}

// A Read-Composite answer is decoded against the root: records of several objects come back.
func TestDecodeCompositeAnswer(t *testing.T) {
	read := Request{Op: OpReadComposite, Path: lwm2m.RootPath, Paths: []lwm2m.Path{p("/3/0/3"), p("/5/0/3")}}
	resp := transport.NewMessage(transport.Content)
	resp.ContentFormat = int(lwm2m.FormatSenMLJSON)
	resp.Payload = []byte(`[{"n":"/3/0/3","vs":"1.0.0"},{"n":"/5/0/3","v":0}]`)
	res, err := decodeResult(read, lwm2m.FormatSenMLJSON, resp, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != 2 || res.Records[0].Path != p("/3/0/3") || res.Records[0].Value.Str != "1.0.0" || res.Records[1].Path != p("/5/0/3") {
		t.Fatalf("records %+v", res.Records)
	}
	// 2.04 is not an answer to a read.
	resp.Code = transport.Changed
	if _, err := decodeResult(read, lwm2m.FormatSenMLJSON, resp, nil); err == nil {
		t.Fatal("2.04 accepted as a Read-Composite answer")
	}
	write := Request{Op: OpWriteComposite, Path: lwm2m.RootPath, Records: []lwm2m.Record{rec("/1/0/1", lwm2m.Integer(1))}}
	if res, err := decodeResult(write, lwm2m.FormatSenMLJSON, transport.NewMessage(transport.Changed), nil); err != nil || res.Code != "2.04" {
		t.Fatalf("write answer: %+v %v", res, err)
	}
}
