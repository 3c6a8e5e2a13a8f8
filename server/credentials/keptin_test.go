package credentials_test

import (
	"testing"

	"github.com/lwota/lwota/server/credentials"
)

// mapStore is a credentials.Store of a type that is not comparable (a map field), as a test
// double or a wrapper may be: KeptIn must answer false, not panic comparing it.
type mapStore struct {
	credentials.Store
	seen map[string]bool
}

func TestKeptIn(t *testing.T) {
	s, other := openStore(t), openStore(t)
	m := newManager(t, s)
	ms := mapStore{Store: s, seen: map[string]bool{}}
	mm := newManager(t, ms)
	for _, tc := range []struct {
		name  string
		m     *credentials.Manager
		store any
		want  bool
	}{
		{"its own store", m, s, true},
		{"another store", m, other, false},
		{"another table of its store", m, s.BootstrapCredentials(), false},
		{"nil", m, nil, false},
		{"an uncomparable store, itself", mm, ms, false},
		{"an uncomparable store, another", mm, mapStore{Store: s}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.m.KeptIn(tc.store); got != tc.want {
				t.Errorf("KeptIn = %v, want %v", got, tc.want)
			}
		})
	}
}
