package storetest

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/observe"
)

// RunObserve is the contract of observe.Store.
func RunObserve(t *testing.T, open func(t *testing.T) observe.Store) {
	parallel(t, "Observations", open, testObservations)
	parallel(t, "ObservationReplaced", open, testObservationReplaced)
	parallel(t, "Delete", open, testObservationDelete)
	parallel(t, "Latest", open, testLatest)
	parallel(t, "Cancelled", open, testObserveCancelled)
}

func observation(ep, path string, token ...byte) *observe.Observation {
	return &observe.Observation{
		Endpoint: ep, Path: lwm2m.MustParsePath(path), Token: token,
		Format: lwm2m.FormatSenMLCBOR, CreatedAt: at(time.Duration(len(path)) * time.Second),
	}
}

func obsKey(o *observe.Observation) string { return o.Endpoint + " " + o.Path.String() }

// sortObservations orders by endpoint, then path: the interface promises no order.
func sortObservations(os []*observe.Observation) []*observe.Observation {
	os = slices.Clone(os)
	slices.SortFunc(os, func(a, b *observe.Observation) int {
		if a.Endpoint != b.Endpoint {
			return cmpString(a.Endpoint, b.Endpoint)
		}
		return cmpString(a.Path.String(), b.Path.String())
	})
	return os
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func checkObservations(t *testing.T, what string, got, want []*observe.Observation) {
	t.Helper()
	got, want = sortObservations(got), sortObservations(want)
	if len(got) != len(want) {
		t.Errorf("%s: %d observations, want %d: %v", what, len(got), len(want), describe(got))
		return
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Endpoint != w.Endpoint || g.Path != w.Path || !bytes.Equal(g.Token, w.Token) ||
			g.Format != w.Format || !utc(g.CreatedAt).Equal(utc(w.CreatedAt)) || !slices.Equal(g.Paths, w.Paths) {
			t.Errorf("%s: got %+v, want %+v", what, *g, *w)
		}
	}
}

func describe(os []*observe.Observation) []string {
	out := make([]string, 0, len(os))
	for _, o := range os {
		out = append(out, fmt.Sprintf("%s token %x", obsKey(o), o.Token))
	}
	return out
}

func mustSaveObservation(t *testing.T, s observe.Store, os ...*observe.Observation) {
	t.Helper()
	for _, o := range os {
		if err := s.SaveObservation(context.Background(), o); err != nil {
			t.Fatalf("SaveObservation(%s): %v", obsKey(o), err)
		}
	}
}

func mustObservations(t *testing.T, s observe.Store, ep string) []*observe.Observation {
	t.Helper()
	got, err := s.Observations(context.Background(), ep)
	if err != nil {
		t.Fatalf("Observations(%q): %v", ep, err)
	}
	return got
}

func testObservations(t *testing.T, s observe.Store) {
	a1 := observation("a", "/3/0/13", 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08)
	a2 := observation("a", "/5/0/3", 0xff)
	a3 := observation("a", "/3303", 0x00)
	b1 := observation("b", "/5/0/3", 0x0b)
	b1.Format = lwm2m.FormatTLV
	ab := observation("ab", "/", 0x0c) // the root path, and an endpoint that shares a's prefix
	// An Observe-Composite: the root path, with its paths kept in order.
	ab.Paths = []lwm2m.Path{lwm2m.MustParsePath("/5/0/3"), lwm2m.MustParsePath("/3/0/3"), lwm2m.MustParsePath("/5/0/5")}
	mustSaveObservation(t, s, a1, a2, a3, b1, ab)

	checkObservations(t, "Observations(a)", mustObservations(t, s, "a"), []*observe.Observation{a1, a2, a3})
	checkObservations(t, "Observations(b)", mustObservations(t, s, "b"), []*observe.Observation{b1})
	checkObservations(t, "Observations(ab)", mustObservations(t, s, "ab"), []*observe.Observation{ab})
	checkObservations(t, "Observations(\"\")", mustObservations(t, s, ""), []*observe.Observation{a1, a2, a3, b1, ab})
	checkObservations(t, "Observations(nobody)", mustObservations(t, s, "nobody"), nil)
}

func testObservationReplaced(t *testing.T, s observe.Store) {
	first := observation("a", "/3/0/13", 0x01)
	mustSaveObservation(t, s, first)
	second := observation("a", "/3/0/13", 0x02, 0x03)
	second.Format = lwm2m.FormatText
	second.CreatedAt = at(time.Hour)
	mustSaveObservation(t, s, second)
	checkObservations(t, "after re-observe", mustObservations(t, s, "a"), []*observe.Observation{second})
}

func testObservationDelete(t *testing.T, s observe.Store) {
	keep := observation("a", "/3/0/13", 0x01)
	drop := observation("a", "/5/0/3", 0x02)
	other := observation("b", "/5/0/3", 0x03)
	mustSaveObservation(t, s, keep, drop, other)
	if err := s.DeleteObservation(context.Background(), "a", drop.Path); err != nil {
		t.Fatalf("DeleteObservation: %v", err)
	}
	checkObservations(t, "after delete", mustObservations(t, s, ""), []*observe.Observation{keep, other})
	// Deleting what is not there is not an error.
	if err := s.DeleteObservation(context.Background(), "a", drop.Path); err != nil {
		t.Errorf("DeleteObservation twice: %v", err)
	}
	if err := s.DeleteObservation(context.Background(), "nobody", lwm2m.NewPath(3)); err != nil {
		t.Errorf("DeleteObservation(nobody): %v", err)
	}
}

func normLatest(ls []*observe.Latest) []observe.Latest {
	out := make([]observe.Latest, 0, len(ls))
	for _, l := range ls {
		c := *l
		c.Records = normRecords(c.Records)
		c.Time = utc(c.Time)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b observe.Latest) int {
		if a.Endpoint != b.Endpoint {
			return cmpString(a.Endpoint, b.Endpoint)
		}
		return cmpString(a.Path.String(), b.Path.String())
	})
	return out
}

func testLatest(t *testing.T, s observe.Store) {
	ctx := context.Background()
	temp := &observe.Latest{Endpoint: "a", Path: lwm2m.NewPath(3303, 0, 5700),
		Records: []lwm2m.Record{{Path: lwm2m.NewPath(3303, 0, 5700), Value: lwm2m.Float(21.5)}}, Time: at(0)}
	device := &observe.Latest{Endpoint: "a", Path: lwm2m.NewPath(3, 0), Records: records(), Time: at(time.Second)}
	other := &observe.Latest{Endpoint: "b", Path: lwm2m.NewPath(3, 0), Records: records()[:1], Time: at(2 * time.Second)}
	for _, l := range []*observe.Latest{temp, device, other} {
		if err := s.SaveLatest(ctx, l); err != nil {
			t.Fatalf("SaveLatest(%s %s): %v", l.Endpoint, l.Path, err)
		}
	}
	got, err := s.LatestFor(ctx, "a")
	if err != nil {
		t.Fatalf("LatestFor(a): %v", err)
	}
	if g, w := normLatest(got), normLatest([]*observe.Latest{temp, device}); !reflect.DeepEqual(g, w) {
		t.Errorf("LatestFor(a):\n got %+v\nwant %+v", g, w)
	}

	// A newer notification replaces the value.
	newer := &observe.Latest{Endpoint: "a", Path: temp.Path,
		Records: []lwm2m.Record{{Path: temp.Path, Value: lwm2m.Float(22.25), Time: at(time.Minute)}}, Time: at(time.Minute)}
	if err := s.SaveLatest(ctx, newer); err != nil {
		t.Fatalf("SaveLatest: %v", err)
	}
	got, err = s.LatestFor(ctx, "a")
	if err != nil {
		t.Fatalf("LatestFor(a): %v", err)
	}
	if g, w := normLatest(got), normLatest([]*observe.Latest{newer, device}); !reflect.DeepEqual(g, w) {
		t.Errorf("LatestFor(a) after an update:\n got %+v\nwant %+v", g, w)
	}
	if got, err := s.LatestFor(ctx, "nobody"); err != nil || len(got) != 0 {
		t.Errorf("LatestFor(nobody) = %d values, %v; want none", len(got), err)
	}
}

func testObserveCancelled(t *testing.T, s observe.Store) {
	ctx := cancelled()
	o := observation("a", "/3/0/13", 0x01)
	wantCanceled(t, "SaveObservation", s.SaveObservation(ctx, o))
	wantCanceled(t, "DeleteObservation", s.DeleteObservation(ctx, "a", o.Path))
	_, err := s.Observations(ctx, "a")
	wantCanceled(t, "Observations", err)
	wantCanceled(t, "SaveLatest", s.SaveLatest(ctx, &observe.Latest{Endpoint: "a", Path: o.Path, Time: at(0)}))
	_, err = s.LatestFor(ctx, "a")
	wantCanceled(t, "LatestFor", err)
	if got := mustObservations(t, s, ""); len(got) != 0 {
		t.Errorf("a cancelled SaveObservation was applied: %v", describe(got))
	}
	if got, err := s.LatestFor(context.Background(), "a"); err != nil || len(got) != 0 {
		t.Errorf("a cancelled SaveLatest was applied: %d values, %v", len(got), err)
	}
}
