package lwm2mtest

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"

	"github.com/lwota/lwota/server/codec"
	"github.com/lwota/lwota/server/lwm2m"
)

func TestRegister(t *testing.T) {
	tests := []struct {
		name      string
		cfg       DeviceConfig
		wantQuery []string
		wantLinks string
	}{
		{
			name:      "1.1 default",
			cfg:       DeviceConfig{Endpoint: "ep-11", Lifetime: time.Minute},
			wantQuery: []string{"ep=ep-11", "lt=60", "lwm2m=1.1", "b=U"},
			wantLinks: `</>;rt="oma.lwm2m";ct="112 110 11542 0",</1/0>,</3/0>,</5/0>`,
		},
		{
			name:      "1.0 queue mode",
			cfg:       DeviceConfig{Endpoint: "ep-10", LwM2MVersion: "1.0", Binding: "UQ"},
			wantQuery: []string{"ep=ep-10", "lt=300", "lwm2m=1.0", "b=UQ"},
			wantLinks: `</>;rt="oma.lwm2m";ct="11542 0",</1/0>,</3/0>,</5/0>`,
		},
		{
			name: "1.2 queue mode object 5 1.1 one format",
			cfg: DeviceConfig{Endpoint: "ep-12", LwM2MVersion: "1.2", Binding: "UQ", Object5Version: "1.1",
				ContentFormats: []lwm2m.ContentFormat{lwm2m.FormatSenMLJSON}},
			wantQuery: []string{"ep=ep-12", "lt=300", "lwm2m=1.2", "b=U", "Q"},
			wantLinks: `</>;rt="oma.lwm2m";ct=110,</1/0>,</3/0>,</5/0>;ver=1.1`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t)
			d := NewDevice(tt.cfg, nil)
			t.Cleanup(func() { _ = d.Close() })
			if err := d.Start(ctxT(t), s.addr); err != nil {
				t.Fatalf("start: %v", err)
			}
			e := s.next(t, "register", 5*time.Second)
			if !slices.Equal(e.queries, tt.wantQuery) {
				t.Errorf("query = %q, want %q", e.queries, tt.wantQuery)
			}
			if e.links != tt.wantLinks {
				t.Errorf("links = %s, want %s", e.links, tt.wantLinks)
			}
			if d.Location() != e.loc {
				t.Errorf("Location() = %q, want %q", d.Location(), e.loc)
			}
			if e.from.String() != d.LocalAddr().String() {
				t.Errorf("registered from %v, device socket is %v", e.from, d.LocalAddr())
			}
			if err := d.Deregister(ctxT(t)); err != nil {
				t.Fatalf("deregister: %v", err)
			}
			if e := s.next(t, "deregister", 5*time.Second); e.code != codes.Deleted || e.loc != "/rd/x1" {
				t.Errorf("deregister = %+v", e)
			}
			if d.Location() != "" {
				t.Errorf("Location() after deregister = %q", d.Location())
			}
			st := d.Stats()
			if st.Registrations != 1 || st.Deregistrations != 1 {
				t.Errorf("stats = %+v", st)
			}
		})
	}
}

func TestRead(t *testing.T) {
	s := newTestServer(t)
	d := startDevice(t, s, DeviceConfig{Manufacturer: "Acme", Model: "M1", SerialNumber: "SN7", FirmwareVersion: "2.0.1", DeviceType: "meter"})
	c := s.dm(t, d)
	want := map[string]lwm2m.Value{
		"/3/0/0":  lwm2m.String("Acme"),
		"/3/0/1":  lwm2m.String("M1"),
		"/3/0/2":  lwm2m.String("SN7"),
		"/3/0/3":  lwm2m.String("2.0.1"),
		"/3/0/9":  lwm2m.Integer(100),
		"/3/0/17": lwm2m.String("meter"),
	}
	for _, tt := range []struct {
		name   string
		path   string
		accept int // -1: none
		wantCF lwm2m.ContentFormat
	}{
		{"instance TLV", "/3/0", int(lwm2m.FormatTLV), lwm2m.FormatTLV},
		{"instance SenML JSON", "/3/0", int(lwm2m.FormatSenMLJSON), lwm2m.FormatSenMLJSON},
		{"instance SenML CBOR", "/3/0", int(lwm2m.FormatSenMLCBOR), lwm2m.FormatSenMLCBOR},
		{"instance default is SenML CBOR", "/3/0", -1, lwm2m.FormatSenMLCBOR},
		{"object TLV", "/3", int(lwm2m.FormatTLV), lwm2m.FormatTLV},
		{"resource text", "/3/0/0", int(lwm2m.FormatText), lwm2m.FormatText},
		{"resource TLV", "/3/0/9", int(lwm2m.FormatTLV), lwm2m.FormatTLV},
		{"resource SenML JSON", "/3/0/1", int(lwm2m.FormatSenMLJSON), lwm2m.FormatSenMLJSON},
		{"device type text", "/3/0/17", int(lwm2m.FormatText), lwm2m.FormatText},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var a answer
			if tt.accept < 0 {
				a = c.get(tt.path)
			} else {
				a = c.get(tt.path, accept(lwm2m.ContentFormat(tt.accept)))
			}
			if a.code != codes.Content || a.cf != int(tt.wantCF) {
				t.Fatalf("answer %v cf %d, want 2.05 cf %d", a.code, a.cf, tt.wantCF)
			}
			p := lwm2m.MustParsePath(tt.path)
			recs, err := codec.Decode(tt.wantCF, p, a.body, d.tree)
			if err != nil {
				t.Fatalf("decode %q: %v", a.body, err)
			}
			got := map[string]lwm2m.Value{}
			for _, r := range recs {
				got[r.Path.String()] = r.Value
			}
			checked := 0
			for path, v := range want {
				if !lwm2m.MustParsePath(path).HasPrefix(p) {
					continue
				}
				checked++
				if !got[path].Equal(v) {
					t.Errorf("%s = %v, want %v", path, got[path], v)
				}
			}
			if checked == 0 {
				t.Fatalf("nothing checked")
			}
			if p.Len() <= 2 {
				if _, ok := got["/3/0/4"]; ok {
					t.Errorf("executable /3/0/4 was read")
				}
				if v := got["/3/0/11/0"]; !v.Equal(lwm2m.Integer(0)) {
					t.Errorf("/3/0/11/0 = %v", v)
				}
			}
		})
	}
	t.Run("exact bytes", func(t *testing.T) {
		if a := c.get("/3/0/9", accept(lwm2m.FormatTLV)); string(a.body) != "\xc1\x09\x64" {
			t.Errorf("TLV /3/0/9 = % x", a.body)
		}
		if a := c.get("/3/0/9", accept(lwm2m.FormatText)); string(a.body) != "100" {
			t.Errorf("text /3/0/9 = %q", a.body)
		}
		if a := c.get("/3/0/9", accept(lwm2m.FormatSenMLJSON)); string(a.body) != `[{"bn":"/3/0/9","v":100}]` {
			t.Errorf("SenML JSON /3/0/9 = %s", a.body)
		}
	})
	if n := d.Stats().Requests[OpRead]; n != 12 {
		t.Errorf("reads counted = %d, want 12", n)
	}
}

func TestErrors(t *testing.T) {
	s := newTestServer(t)
	d := startDevice(t, s, DeviceConfig{})
	c := s.dm(t, d)
	tests := []struct {
		name string
		do   func() answer
		want codes.Code
	}{
		{"read unknown object", func() answer { return c.get("/9/0") }, codes.NotFound},
		{"read unknown instance", func() answer { return c.get("/3/1") }, codes.NotFound},
		{"read unknown resource", func() answer { return c.get("/3/0/99") }, codes.NotFound},
		{"read not an lwm2m path", func() answer { return c.get("/.well-known/core") }, codes.NotFound},
		{"read executable", func() answer { return c.get("/3/0/4") }, codes.MethodNotAllowed},
		{"read write-only", func() answer { return c.get("/5/0/0") }, codes.MethodNotAllowed},
		{"write read-only", func() answer { return c.put("/3/0/0", lwm2m.FormatText, []byte("x")) }, codes.MethodNotAllowed},
		{"execute readable", func() answer { return c.post("/3/0/0", lwm2m.FormatText, nil) }, codes.MethodNotAllowed},
		{"execute firmware update while idle", func() answer { return c.post("/5/0/2", lwm2m.FormatText, nil) }, codes.MethodNotAllowed},
		{"create in device object", func() answer { return c.post("/3", lwm2m.FormatTLV, []byte{}) }, codes.MethodNotAllowed},
		{"delete device instance", func() answer { return c.delete("/3/0") }, codes.MethodNotAllowed},
		{"text for an instance", func() answer { return c.get("/3/0", accept(lwm2m.FormatText)) }, codes.NotAcceptable},
		{"undeclared format", func() answer { return c.get("/3/0", accept(lwm2m.FormatLwM2MCBOR)) }, codes.NotAcceptable},
		{"write undeclared format", func() answer { return c.put("/1/0", lwm2m.FormatJSONOld, []byte("{}")) }, codes.UnsupportedMediaType},
		{"write bad TLV", func() answer { return c.put("/1/0/1", lwm2m.FormatTLV, []byte{0xc8, 0x01}) }, codes.BadRequest},
		{"write bad text", func() answer { return c.put("/1/0/1", lwm2m.FormatText, []byte("soon")) }, codes.BadRequest},
		{"write wrong type", func() answer {
			return c.put("/1/0", lwm2m.FormatSenMLJSON, []byte(`[{"bn":"/1/0/","n":"1","vs":"x"}]`))
		}, codes.BadRequest},
		{"write attributes unknown name", func() answer { return c.writeAttributes("/3/0/9", "foo=1") }, codes.BadRequest},
		{"write attributes gt on string", func() answer { return c.writeAttributes("/3/0/0", "gt=1") }, codes.BadRequest},
		{"write attributes pmax < pmin", func() answer { return c.writeAttributes("/3/0/9", "pmin=10", "pmax=5") }, codes.BadRequest},
		{"write attributes unknown path", func() answer { return c.writeAttributes("/3/0/99", "pmin=1") }, codes.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if a := tt.do(); a.code != tt.want {
				t.Errorf("answer %v, want %v", a.code, tt.want)
			}
		})
	}
	if st := d.Stats(); st.Errors != uint64(len(tests)) {
		t.Errorf("errors counted = %d, want %d", st.Errors, len(tests))
	}
	if v, _ := d.Value(lwm2m.MustParsePath("/1/0/1")); !v.Equal(lwm2m.Integer(300)) {
		t.Errorf("lifetime changed by a refused write: %v", v)
	}
}

func TestDiscover(t *testing.T) {
	s := newTestServer(t)
	d := startDevice(t, s, DeviceConfig{Object5Version: "1.1"})
	c := s.dm(t, d)
	if a := c.writeAttributes("/3/0/9", "pmin=10", "pmax=60", "gt=50.5"); a.code != codes.Changed {
		t.Fatalf("write attributes: %v", a.code)
	}
	if a := c.writeAttributes("/3", "pmax=300"); a.code != codes.Changed {
		t.Fatalf("write attributes: %v", a.code)
	}
	tests := []struct{ path, want string }{
		{"/3", "</3>;pmax=300,</3/0>,</3/0/0>,</3/0/1>,</3/0/2>,</3/0/3>,</3/0/4>,</3/0/5>,</3/0/9>;pmin=10;pmax=60;gt=50.5," +
			"</3/0/11>;dim=1,</3/0/12>,</3/0/13>,</3/0/14>,</3/0/15>,</3/0/16>,</3/0/17>"},
		{"/3/0/9", "</3/0/9>;pmin=10;pmax=60;gt=50.5"},
		{"/5/0/8", "</5/0/8>;dim=2"}, // default protocols: CoAP and HTTP
		{"/5", "</5>;ver=1.1,</5/0>,</5/0/0>,</5/0/1>,</5/0/2>,</5/0/3>,</5/0/5>,</5/0/6>,</5/0/7>,</5/0/8>;dim=2,</5/0/9>,</5/0/10>"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			a := c.get(tt.path, accept(lwm2m.FormatLinkFormat))
			if a.code != codes.Content || a.cf != int(lwm2m.FormatLinkFormat) {
				t.Fatalf("answer %v cf %d", a.code, a.cf)
			}
			if string(a.body) != tt.want {
				t.Errorf("discover %s =\n%s\nwant\n%s", tt.path, a.body, tt.want)
			}
		})
	}
	// clearing an attribute removes it
	if a := c.writeAttributes("/3/0/9", "gt", "pmin"); a.code != codes.Changed {
		t.Fatalf("clear: %v", a.code)
	}
	if a := c.get("/3/0/9", accept(lwm2m.FormatLinkFormat)); string(a.body) != "</3/0/9>;pmax=60" {
		t.Errorf("after clear: %s", a.body)
	}
}

func TestWrite(t *testing.T) {
	s := newTestServer(t)
	d := startDevice(t, s, DeviceConfig{Lifetime: time.Hour})
	c := s.dm(t, d)
	p := lwm2m.MustParsePath

	t.Run("replace resource text", func(t *testing.T) {
		if a := c.put("/3/0/14", lwm2m.FormatText, []byte("+02:00")); a.code != codes.Changed {
			t.Fatalf("write: %v", a.code)
		}
		if v, _ := d.Value(p("/3/0/14")); !v.Equal(lwm2m.String("+02:00")) {
			t.Errorf("value = %v", v)
		}
		if a := c.get("/3/0/14", accept(lwm2m.FormatText)); string(a.body) != "+02:00" {
			t.Errorf("read back %q", a.body)
		}
	})
	t.Run("partial update SenML JSON", func(t *testing.T) {
		body := []byte(`[{"bn":"/3/0/","n":"14","vs":"-05:00"},{"n":"15","vs":"America/New_York"}]`)
		if a := c.post("/3/0", lwm2m.FormatSenMLJSON, body); a.code != codes.Changed {
			t.Fatalf("write: %v", a.code)
		}
		for path, want := range map[string]string{"/3/0/14": "-05:00", "/3/0/15": "America/New_York"} {
			if v, _ := d.Value(p(path)); !v.Equal(lwm2m.String(want)) {
				t.Errorf("%s = %v", path, v)
			}
		}
	})
	t.Run("replace instance TLV", func(t *testing.T) {
		recs := []lwm2m.Record{{Path: p("/1/0/2"), Value: lwm2m.Integer(5)}, {Path: p("/1/0/3"), Value: lwm2m.Integer(50)}}
		body, err := codec.Encode(lwm2m.FormatTLV, p("/1/0"), recs)
		if err != nil {
			t.Fatal(err)
		}
		if a := c.put("/1/0", lwm2m.FormatTLV, body); a.code != codes.Changed {
			t.Fatalf("write: %v", a.code)
		}
		a := c.get("/1/0", accept(lwm2m.FormatSenMLCBOR))
		got, err := codec.Decode(lwm2m.FormatSenMLCBOR, p("/1/0"), a.body, d.tree)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(got, func(r lwm2m.Record) bool { return r.Path == p("/1/0/3") && r.Value.Equal(lwm2m.Integer(50)) }) {
			t.Errorf("read back %v", got)
		}
	})
	t.Run("lifetime write sends update with lt", func(t *testing.T) {
		if a := c.put("/1/0/1", lwm2m.FormatText, []byte("120")); a.code != codes.Changed {
			t.Fatalf("write: %v", a.code)
		}
		e := s.next(t, "update", 5*time.Second)
		if !slices.Equal(e.queries, []string{"lt=120"}) {
			t.Errorf("update query = %q", e.queries)
		}
	})
	t.Run("current time", func(t *testing.T) {
		want := time.Now().Add(48 * time.Hour).Unix()
		if a := c.put("/3/0/13", lwm2m.FormatSenMLJSON, []byte(`[{"bn":"/3/0/13","v":`+itoa(want)+`}]`)); a.code != codes.Changed {
			t.Fatalf("write: %v", a.code)
		}
		v, _ := d.Value(p("/3/0/13"))
		if v.Type != lwm2m.TypeTime || v.Int < want || v.Int > want+5 {
			t.Errorf("current time = %v, want about %d", v, want)
		}
	})
	if n := d.Stats().Requests[OpWritePartial]; n != 1 {
		t.Errorf("partial writes counted = %d", n)
	}
}

func itoa(i int64) string { return lwm2m.Integer(i).Text() }

// observer collects the notifications of one observation.
type observer struct {
	ch chan *pool.Message
}

func observe(t *testing.T, c dm, path string, opts ...message.Option) (*observer, func()) {
	t.Helper()
	o := &observer{ch: make(chan *pool.Message, 64)}
	obs, err := c.conn.Observe(ctxT(t), path, func(m *pool.Message) {
		cp := pool.NewMessage(context.Background())
		if err := m.Clone(cp); err == nil {
			o.ch <- cp
		}
	}, opts...)
	if err != nil {
		t.Fatalf("observe %s: %v", path, err)
	}
	return o, func() {
		if err := obs.Cancel(ctxT(t)); err != nil {
			t.Errorf("cancel: %v", err)
		}
	}
}

// next returns the next notification's value at p, decoded.
func (o *observer) next(t *testing.T, d *Device, p lwm2m.Path, within time.Duration) (lwm2m.Value, time.Time) {
	t.Helper()
	select {
	case m := <-o.ch:
		at := time.Now()
		cf, _ := m.ContentFormat()
		body, _ := m.ReadBody()
		recs, err := codec.Decode(lwm2m.ContentFormat(cf), p, body, d.tree)
		if err != nil || len(recs) != 1 {
			t.Fatalf("notification %q: %v", body, err)
		}
		return recs[0].Value, at
	case <-time.After(within):
		t.Fatalf("no notification within %v", within)
	}
	return lwm2m.Value{}, time.Time{}
}

func TestObserve(t *testing.T) {
	s := newTestServer(t)
	d := startDevice(t, s, DeviceConfig{})
	c := s.dm(t, d)
	battery := lwm2m.MustParsePath("/3/0/9")

	t.Run("pmin and pmax", func(t *testing.T) {
		if a := c.writeAttributes("/3/0/9", "pmin=1", "pmax=2"); a.code != codes.Changed {
			t.Fatalf("write attributes: %v", a.code)
		}
		observed := time.Now() // the device answers after this, so its pmin counts from later
		o, cancel := observe(t, c, "/3/0/9", accept(lwm2m.FormatSenMLJSON))
		if v, _ := o.next(t, d, battery, 5*time.Second); !v.Equal(lwm2m.Integer(100)) { // the Observe answer
			t.Fatalf("first = %v", v)
		}
		changed := time.Now()
		d.SetValue(battery, lwm2m.Integer(90)) // within pmin: held until 1 s after the answer
		v, _ := o.next(t, d, battery, 5*time.Second)
		if !v.Equal(lwm2m.Integer(90)) {
			t.Errorf("after change = %v", v)
		}
		if since := time.Since(observed); since < time.Second {
			t.Errorf("notified %v after the Observe, before pmin", since)
		}
		v, _ = o.next(t, d, battery, 5*time.Second) // nothing changes: pmax
		if since := time.Since(changed); !v.Equal(lwm2m.Integer(90)) || since < 2*time.Second {
			t.Errorf("pmax notification %v, %v after the change", v, since)
		}
		cancel()
		if n := d.Observations(); n != 0 {
			t.Fatalf("observations after cancel = %d", n)
		}
		// A confirmable notification is counted once its ACK is in, which can be after the
		// observer saw it: wait for both before checking that nothing more is sent.
		eventually(t, 5*time.Second, "two notifications counted", func() bool { return d.Stats().Notifications >= 2 })
		before := d.Stats().Notifications
		d.SetValue(battery, lwm2m.Integer(80))
		if after := d.Stats().Notifications; after != before {
			t.Errorf("notified after cancel")
		}
		if st := d.Stats(); st.Requests[OpObserve] != 1 || st.Requests[OpCancelObserve] != 1 || st.Notifications < 2 {
			t.Errorf("stats = %+v", st)
		}
		c.writeAttributes("/3/0/9", "pmin", "pmax")
	})

	t.Run("step", func(t *testing.T) {
		if a := c.writeAttributes("/3/0/9", "st=10"); a.code != codes.Changed {
			t.Fatalf("write attributes: %v", a.code)
		}
		d.SetValue(battery, lwm2m.Integer(50))
		o, cancel := observe(t, c, "/3/0/9", accept(lwm2m.FormatSenMLCBOR))
		defer cancel()
		o.next(t, d, battery, 5*time.Second)
		d.SetValue(battery, lwm2m.Integer(45)) // a step of 5: no notification
		d.SetValue(battery, lwm2m.Integer(39)) // 11 from the last notified value
		if v, _ := o.next(t, d, battery, 5*time.Second); !v.Equal(lwm2m.Integer(39)) {
			t.Errorf("notified %v, want 39", v)
		}
	})

	t.Run("instance observed, resource written by the server", func(t *testing.T) {
		o, cancel := observe(t, c, "/3/0", accept(lwm2m.FormatSenMLJSON))
		defer cancel()
		<-o.ch
		if a := c.put("/3/0/15", lwm2m.FormatText, []byte("Europe/Paris")); a.code != codes.Changed {
			t.Fatalf("write: %v", a.code)
		}
		select {
		case m := <-o.ch:
			body, _ := m.ReadBody()
			if !strings.Contains(string(body), "Europe/Paris") {
				t.Errorf("notification %s", body)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no notification")
		}
	})
}

func TestObserveCancelledByReset(t *testing.T) {
	s := newTestServer(t)
	d := startDevice(t, s, DeviceConfig{NonConfirmableNotifications: true})
	c := s.dm(t, d)
	battery := lwm2m.MustParsePath("/3/0/9")
	o, _ := observe(t, c, "/3/0/9", accept(lwm2m.FormatTLV))
	<-o.ch
	d.SetValue(battery, lwm2m.Integer(10))
	var mid int32
	select {
	case m := <-o.ch:
		if m.Type() != message.NonConfirmable {
			t.Errorf("notification type %v", m.Type())
		}
		mid = m.MessageID()
	case <-time.After(5 * time.Second):
		t.Fatal("no notification")
	}
	// The server rejects the notification with a Reset (RFC 7641 §3.6), from its own socket.
	rst := []byte{0x70, 0x00, byte(mid >> 8), byte(mid)}
	pc, ok := c.conn.NetConn().(net.PacketConn)
	if !ok {
		t.Fatalf("server socket is %T", c.conn.NetConn())
	}
	if _, err := pc.WriteTo(rst, d.LocalAddr()); err != nil {
		t.Fatalf("send reset: %v", err)
	}
	eventually(t, 5*time.Second, "observation cancelled", func() bool { return d.Observations() == 0 })
}

func TestExecute(t *testing.T) {
	s := newTestServer(t)
	d := startDevice(t, s, DeviceConfig{})
	c := s.dm(t, d)
	first := d.LocalAddr().String()

	t.Run("registration update trigger", func(t *testing.T) {
		if a := c.post("/1/0/8", lwm2m.FormatText, nil); a.code != codes.Changed {
			t.Fatalf("execute: %v", a.code)
		}
		if e := s.next(t, "update", 5*time.Second); e.code != codes.Changed || e.links != "" {
			t.Errorf("update = %+v", e)
		}
	})
	t.Run("reset error code with arguments", func(t *testing.T) {
		d.SetValue(lwm2m.MustParsePath("/3/0/11/1"), lwm2m.Integer(3))
		if a := c.post("/3/0/12", lwm2m.FormatText, []byte("0='x'")); a.code != codes.Changed {
			t.Fatalf("execute: %v", a.code)
		}
		if _, ok := d.Value(lwm2m.MustParsePath("/3/0/11/1")); ok {
			t.Errorf("error code 1 still there")
		}
	})
	t.Run("reboot", func(t *testing.T) {
		_, _ = observe(t, c, "/3/0/9")
		if a := c.post("/3/0/4", lwm2m.FormatText, nil); a.code != codes.Changed {
			t.Fatalf("execute: %v", a.code)
		}
		e := s.next(t, "register", 5*time.Second)
		if e.from.String() == first {
			t.Errorf("re-registered from the same address %s", first)
		}
		eventually(t, 5*time.Second, "location updated", func() bool { return d.Location() == e.loc })
		if d.Observations() != 0 {
			t.Errorf("observations survived the reboot")
		}
		st := d.Stats()
		if st.Reboots != 1 || st.Registrations != 2 || st.Deregistrations != 0 || st.Executes != 3 {
			t.Errorf("stats = %+v", st)
		}
		// the server reaches the device at its new address
		if a := s.dm(t, d).get("/3/0/0", accept(lwm2m.FormatText)); a.code != codes.Content {
			t.Errorf("read after reboot: %v", a.code)
		}
	})
}

func TestRebootFromNewPort(t *testing.T) {
	s := newTestServer(t)
	d := startDevice(t, s, DeviceConfig{})
	before := d.LocalAddr().String()
	loc := d.Location()
	if err := d.Reboot(ctxT(t)); err != nil {
		t.Fatalf("reboot: %v", err)
	}
	e := s.next(t, "register", 5*time.Second)
	if e.from.String() == before || d.LocalAddr().String() == before {
		t.Errorf("same source after reboot: %s", before)
	}
	if d.Location() == loc || d.Location() != e.loc {
		t.Errorf("location %q, before %q, server %q", d.Location(), loc, e.loc)
	}
}

func TestCreateDelete(t *testing.T) {
	s := newTestServer(t)
	d := NewDevice(DeviceConfig{Endpoint: "create-delete"}, nil)
	t.Cleanup(func() { _ = d.Close() })
	d.mu.Lock()
	d.tree.addObject(&objectDef{id: 32769, multiple: true, creatable: true, resources: map[uint16]*resourceDef{
		0: {id: 0, typ: lwm2m.TypeString, ops: opR | opW},
		1: {id: 1, typ: lwm2m.TypeFloat, ops: opR},
	}})
	d.mu.Unlock()
	if err := d.Start(ctxT(t), s.addr); err != nil {
		t.Fatal(err)
	}
	if e := s.next(t, "register", 5*time.Second); !strings.HasSuffix(e.links, ",</32769>") {
		t.Errorf("links %s", e.links)
	}
	c := s.dm(t, d)
	body := []byte(`[{"bn":"/32769/4/","n":"0","vs":"hello"},{"n":"1","v":2.5}]`)
	a := c.post("/32769", lwm2m.FormatSenMLJSON, body)
	if a.code != codes.Created || a.loc != "/32769/4" {
		t.Fatalf("create: %v %q", a.code, a.loc)
	}
	if e := s.next(t, "update", 5*time.Second); !strings.HasSuffix(e.links, ",</32769/4>") {
		t.Errorf("update links %s", e.links)
	}
	if v, _ := d.Value(lwm2m.MustParsePath("/32769/4/1")); !v.Equal(lwm2m.Float(2.5)) {
		t.Errorf("created value %v", v)
	}
	if a := c.post("/32769", lwm2m.FormatSenMLJSON, body); a.code != codes.BadRequest {
		t.Errorf("create twice: %v", a.code)
	}
	// TLV without an instance wrapper gets the next free id
	tlv, _ := codec.Encode(lwm2m.FormatTLV, lwm2m.MustParsePath("/32769/0"), []lwm2m.Record{{Path: lwm2m.MustParsePath("/32769/0/0"), Value: lwm2m.String("b")}})
	if a := c.post("/32769", lwm2m.FormatTLV, tlv); a.code != codes.Created || a.loc != "/32769/0" {
		t.Errorf("create TLV: %v %q", a.code, a.loc)
	}
	if a := c.delete("/32769/4"); a.code != codes.Deleted {
		t.Fatalf("delete: %v", a.code)
	}
	if a := c.get("/32769/4"); a.code != codes.NotFound {
		t.Errorf("read deleted: %v", a.code)
	}
	if a := c.delete("/32769/4"); a.code != codes.NotFound {
		t.Errorf("delete twice: %v", a.code)
	}
	st := d.Stats()
	if st.Requests[OpCreate] != 3 || st.Requests[OpDelete] != 2 {
		t.Errorf("stats %+v", st.Requests)
	}
}

func TestQueueMode(t *testing.T) {
	s := newTestServer(t)

	t.Run("sleeps after the queue window", func(t *testing.T) {
		d := startDevice(t, s, DeviceConfig{Binding: "UQ", QueueWindow: 200 * time.Millisecond})
		eventually(t, 5*time.Second, "asleep after the queue window", d.Asleep)
		if err := d.Wake(ctxT(t)); err != nil {
			t.Fatalf("wake: %v", err)
		}
		if d.Asleep() {
			t.Errorf("asleep right after waking")
		}
	})

	t.Run("requests dropped and notifications held while asleep", func(t *testing.T) {
		d := startDevice(t, s, DeviceConfig{Binding: "UQ", QueueWindow: time.Minute})
		c := s.dm(t, d)
		battery := lwm2m.MustParsePath("/3/0/9")
		o, _ := observe(t, c, "/3/0/9", accept(lwm2m.FormatText))
		<-o.ch
		d.Sleep()
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		if _, err := c.conn.Get(ctx, "/3/0/0"); err == nil {
			t.Errorf("a sleeping device answered")
		}
		if d.Stats().Dropped == 0 {
			t.Errorf("no dropped request counted")
		}
		d.SetValue(battery, lwm2m.Integer(42)) // held while asleep
		if d.Stats().Notifications != 0 {
			t.Errorf("notified while asleep")
		}
		if err := d.Wake(ctxT(t)); err != nil {
			t.Fatalf("wake: %v", err)
		}
		s.next(t, "update", 5*time.Second)
		if v, _ := o.next(t, d, battery, 5*time.Second); !v.Equal(lwm2m.Integer(42)) {
			t.Errorf("held notification %v", v)
		}
		if a := c.get("/3/0/0", accept(lwm2m.FormatText)); a.code != codes.Content {
			t.Errorf("awake device answered %v", a.code)
		}
	})
}

func TestUpdateLoopAndForgottenRegistration(t *testing.T) {
	s := newTestServer(t)
	d := startDevice(t, s, DeviceConfig{Lifetime: time.Second})
	e := s.next(t, "update", 5*time.Second) // 90 % of 1 s
	if e.code != codes.Changed || len(e.queries) != 0 {
		t.Errorf("update = %+v", e)
	}
	s.mu.Lock()
	s.forget = true
	s.mu.Unlock()
	for e.code != codes.NotFound { // skip updates answered before the server forgot
		e = s.next(t, "update", 5*time.Second)
	}
	e = s.next(t, "register", 5*time.Second)
	eventually(t, 5*time.Second, "new location", func() bool { return d.Location() == e.loc })
}
