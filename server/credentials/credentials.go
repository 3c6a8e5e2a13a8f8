package credentials

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/transport"
)

// Errors of the store and the Manager.
var (
	// ErrNotFound: no credential for this identity or endpoint.
	ErrNotFound = errors.New("credentials: not found")
	// ErrIdentityTaken: another endpoint already uses this PSK identity.
	ErrIdentityTaken = errors.New("credentials: identity already used by another endpoint")
	// ErrInvalid: an empty or oversized endpoint, identity or key.
	ErrInvalid = errors.New("credentials: invalid credential")
)

// Limits on what Put accepts (RFC 4279 §5.3: identities up to 2^16-1 bytes; lwota keeps them short).
const (
	MaxIdentityLen = 128
	MaxKeyLen      = 64
	// MaxEndpointLen is the longest endpoint name that can register (lwm2m.MaxEndpointLen): a
	// credential for a longer name could never be used.
	MaxEndpointLen = lwm2m.MaxEndpointLen
	// ServerKeyLen is the length of the AES-256 key that seals PSKs at rest.
	ServerKeyLen = 32
)

// Credential is a device's DTLS PSK credential in the clear.
type Credential struct {
	Endpoint  string
	Identity  string
	Key       []byte
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Sealed is a credential as stored: Key is AES-256-GCM encrypted under the server key with Nonce,
// and Endpoint and Identity are its additional data, so a sealed key opens on its own row only.
type Sealed struct {
	Endpoint  string
	Identity  string
	Nonce     []byte
	SealedKey []byte
	// KeyID names the server key SealedKey is sealed with (1: the node-local credential key,
	// or the keyring's first credential-seal key).
	KeyID     uint32
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Exister is the optional capability of a Store to tell whether an endpoint has a credential
// without reading it (HasCredential runs for every NoSec Register and Update).
type Exister interface {
	HasCredential(ctx context.Context, endpoint string) (bool, error)
}

// Store persists sealed credentials. Identity is unique across endpoints: saving an identity
// another endpoint holds fails with an error matching ErrIdentityTaken. Lookups and deleting a
// missing credential fail with an error matching ErrNotFound.
type Store interface {
	SaveCredential(ctx context.Context, c *Sealed) error
	CredentialByIdentity(ctx context.Context, identity string) (*Sealed, error)
	CredentialByEndpoint(ctx context.Context, endpoint string) (*Sealed, error)
	DeleteCredential(ctx context.Context, endpoint string) error
	// CredentialRefs returns the stored credentials (without their keys) whose endpoint is one of
	// endpoints or whose identity is one of identities.
	CredentialRefs(ctx context.Context, endpoints, identities []string) ([]Ref, error)
	// SaveCredentials stores cs in one transaction, replacing the credentials of their endpoints
	// (identities may move between them): all are saved or none. An identity held by an endpoint
	// outside cs fails with an error matching ErrIdentityTaken.
	SaveCredentials(ctx context.Context, cs []*Sealed) error
}

// Ref is a stored credential without its key.
type Ref struct {
	Endpoint  string
	Identity  string
	CreatedAt time.Time
}

// Manager seals, stores and looks up credentials. It implements transport.PSKStore.
type Manager struct {
	store Store
	keys  atomic.Pointer[serverKeys] // swapped whole by SetKeys: the handshake path never locks
	log   *slog.Logger
	now   func() time.Time
	// refresh, when set, reloads the keys (SetKeys) on meeting a row sealed with a key id this
	// Manager does not hold, and reports whether they changed. See SetRefresh.
	refresh func(context.Context) bool
}

// serverKeys are the keys rows may be sealed with; active seals new rows.
type serverKeys struct {
	active uint32
	aeads  map[uint32]cipher.AEAD
}

// New returns a Manager over store sealing keys with serverKey (32 bytes), as key 1. A nil
// logger discards.
func New(store Store, serverKey []byte, logger *slog.Logger) (*Manager, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := &Manager{store: store, log: logger, now: time.Now}
	if err := m.SetKeys(1, map[uint32][]byte{1: serverKey}); err != nil {
		return nil, err
	}
	return m, nil
}

// SetKeys replaces the server keys: active (one of keys) seals from now on, and every key of
// keys opens the rows sealed with it. A cluster node calls it when the keyring changes.
func (m *Manager) SetKeys(active uint32, keys map[uint32][]byte) error {
	if _, ok := keys[active]; !ok {
		return fmt.Errorf("credentials: active key %d not among the keys", active)
	}
	ks := &serverKeys{active: active, aeads: make(map[uint32]cipher.AEAD, len(keys))}
	for id, key := range keys {
		if len(key) != ServerKeyLen {
			return fmt.Errorf("credentials: server key %d is %d bytes, want %d", id, len(key), ServerKeyLen)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return fmt.Errorf("credentials: %w", err)
		}
		if ks.aeads[id], err = cipher.NewGCM(block); err != nil {
			return fmt.Errorf("credentials: %w", err)
		}
	}
	m.keys.Store(ks)
	return nil
}

// SetRefresh sets, before the Manager is used, a function called when a row is sealed with a
// key this Manager does not hold (rotated on another cluster node): it reloads the keys with
// SetKeys and reports whether they changed, and the row is opened once more.
func (m *Manager) SetRefresh(refresh func(context.Context) bool) { m.refresh = refresh }

// additionalData binds a sealed key to its endpoint and identity (length-prefixed, so no two
// pairs give the same bytes).
func additionalData(endpoint, identity string) []byte {
	var b bytes.Buffer
	b.WriteString("lwota-psk-v1")
	for _, s := range []string{endpoint, identity} {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(s)))
		b.Write(n[:])
		b.WriteString(s)
	}
	return b.Bytes()
}

// validate checks one credential's fields against the limits (ErrInvalid).
func validate(endpoint, identity string, key []byte) error {
	switch {
	case endpoint == "" || len(endpoint) > MaxEndpointLen || !utf8.ValidString(endpoint):
		return fmt.Errorf("%w: endpoint must be 1 to %d bytes of UTF-8", ErrInvalid, MaxEndpointLen)
	case identity == "" || len(identity) > MaxIdentityLen || !utf8.ValidString(identity):
		return fmt.Errorf("%w: identity must be 1 to %d bytes of UTF-8", ErrInvalid, MaxIdentityLen)
	case strings.HasPrefix(identity, transport.X509IdentityPrefix):
		// The transport names certificate sessions so; a PSK identity must never read as one.
		return fmt.Errorf("%w: identity may not start with %q", ErrInvalid, transport.X509IdentityPrefix)
	case len(key) == 0 || len(key) > MaxKeyLen:
		return fmt.Errorf("%w: key must be 1 to %d bytes", ErrInvalid, MaxKeyLen)
	}
	return nil
}

// Put stores the PSK credential of endpoint, replacing the one it had. An identity another
// endpoint holds fails with ErrIdentityTaken.
func (m *Manager) Put(ctx context.Context, endpoint, identity string, key []byte) error {
	if err := validate(endpoint, identity, key); err != nil {
		return err
	}
	if other, err := m.store.CredentialByIdentity(ctx, identity); err == nil && other.Endpoint != endpoint {
		return fmt.Errorf("%w: %q", ErrIdentityTaken, identity)
	} else if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("credentials: put %s: %w", endpoint, err)
	}
	now := m.now().UTC()
	created := now
	if old, err := m.store.CredentialByEndpoint(ctx, endpoint); err == nil {
		created = old.CreatedAt
	} else if !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("credentials: put %s: %w", endpoint, err)
	}
	s, err := m.seal(endpoint, identity, key, created, now)
	if err != nil {
		return err
	}
	if err := m.store.SaveCredential(ctx, s); err != nil {
		return fmt.Errorf("credentials: put %s: %w", endpoint, err)
	}
	m.log.Info("psk credential saved", "endpoint", endpoint, "identity", identity)
	return nil
}

// seal encrypts key for endpoint and identity under a fresh random nonce.
func (m *Manager) seal(endpoint, identity string, key []byte, created, updated time.Time) (*Sealed, error) {
	ks := m.keys.Load()
	aead := ks.aeads[ks.active]
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("credentials: nonce: %w", err)
	}
	return &Sealed{
		Endpoint:  endpoint,
		Identity:  identity,
		Nonce:     nonce,
		SealedKey: aead.Seal(nil, nonce, key, additionalData(endpoint, identity)),
		KeyID:     ks.active,
		CreatedAt: created,
		UpdatedAt: updated,
	}, nil
}

// Seal checks and seals a credential for endpoint without storing it, for a caller that stores
// it in a transaction of its own (the Bootstrap Server saves a freshly minted DM key together
// with the session that wrote it to the device). The row is new: CreatedAt is now.
func (m *Manager) Seal(endpoint, identity string, key []byte) (*Sealed, error) {
	if err := validate(endpoint, identity, key); err != nil {
		return nil, err
	}
	now := m.now().UTC()
	return m.seal(endpoint, identity, key, now, now)
}

// Delete removes endpoint's credential; a missing one is ErrNotFound.
func (m *Manager) Delete(ctx context.Context, endpoint string) error {
	if err := m.store.DeleteCredential(ctx, endpoint); err != nil {
		return fmt.Errorf("credentials: delete %s: %w", endpoint, err)
	}
	m.log.Info("psk credential deleted", "endpoint", endpoint)
	return nil
}

// Get returns endpoint's credential with its key opened.
func (m *Manager) Get(ctx context.Context, endpoint string) (*Credential, error) {
	s, err := m.store.CredentialByEndpoint(ctx, endpoint)
	if err != nil {
		return nil, fmt.Errorf("credentials: %s: %w", endpoint, err)
	}
	return m.open(ctx, s)
}

// HasCredential reports whether endpoint has a PSK credential: such an endpoint is a DTLS
// device, and the server refuses NoSec (plain CoAP) registrations in its name.
func (m *Manager) HasCredential(ctx context.Context, endpoint string) (bool, error) {
	if e, ok := m.store.(Exister); ok {
		has, err := e.HasCredential(ctx, endpoint)
		if err != nil {
			return false, fmt.Errorf("credentials: %s: %w", endpoint, err)
		}
		return has, nil
	}
	_, err := m.store.CredentialByEndpoint(ctx, endpoint)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrNotFound):
		return false, nil
	}
	return false, fmt.Errorf("credentials: %s: %w", endpoint, err)
}

// KeptIn reports whether the credentials are store's, the Store the Manager was made with: a
// registration store that is also the credential store can check a NoSec device's credential in
// its own writes (registration.NoSecToucher).
func (m *Manager) KeptIn(store any) bool {
	t := reflect.TypeOf(store)
	if t == nil || t != reflect.TypeOf(m.store) || !t.Comparable() {
		return false
	}
	return store == any(m.store)
}

func (m *Manager) open(ctx context.Context, s *Sealed) (*Credential, error) {
	aead, ok := m.keys.Load().aeads[s.KeyID]
	if !ok && m.refresh != nil && m.refresh(ctx) {
		aead, ok = m.keys.Load().aeads[s.KeyID]
	}
	if !ok {
		return nil, fmt.Errorf("credentials: %s: sealed with server key %d, which this node does not hold", s.Endpoint, s.KeyID)
	}
	if len(s.Nonce) != aead.NonceSize() {
		return nil, fmt.Errorf("credentials: %s: bad nonce", s.Endpoint)
	}
	key, err := aead.Open(nil, s.Nonce, s.SealedKey, additionalData(s.Endpoint, s.Identity))
	if err != nil {
		return nil, fmt.Errorf("credentials: %s: cannot open the sealed key (wrong server key or moved row): %w", s.Endpoint, err)
	}
	return &Credential{Endpoint: s.Endpoint, Identity: s.Identity, Key: key, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt}, nil
}

func (m *Manager) byIdentity(ctx context.Context, identity string) (*Credential, error) {
	s, err := m.store.CredentialByIdentity(ctx, identity)
	if err != nil {
		return nil, fmt.Errorf("credentials: identity %q: %w", identity, err)
	}
	if s.Identity != identity {
		return nil, fmt.Errorf("credentials: identity %q: %w", identity, ErrNotFound)
	}
	c, err := m.open(ctx, s)
	if err != nil {
		m.log.Error("psk credential unusable", "endpoint", s.Endpoint, "identity", identity, "err", err)
		return nil, err
	}
	return c, nil
}

// PSK returns the pre-shared key of identity (transport.PSKStore).
func (m *Manager) PSK(ctx context.Context, identity string) ([]byte, error) {
	c, err := m.byIdentity(ctx, identity)
	if err != nil {
		return nil, err
	}
	return c.Key, nil
}

// EndpointFor returns the endpoint name that identity may register as. A PSK identity registers
// as the endpoint its credential was stored for. A certificate identity (transport's "x509:NAME",
// a certificate of the CA lwota trusts) registers as NAME, the certificate's own name: certificate
// mode needs no stored credential.
func (m *Manager) EndpointFor(ctx context.Context, identity string) (string, error) {
	if name, ok := transport.CertificateName(identity); ok {
		return name, nil
	}
	s, err := m.store.CredentialByIdentity(ctx, identity)
	if err != nil {
		return "", fmt.Errorf("credentials: identity %q: %w", identity, err)
	}
	return s.Endpoint, nil
}
