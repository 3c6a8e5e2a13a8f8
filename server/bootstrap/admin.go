package bootstrap

import (
	"context"
	"fmt"
	"time"

	"github.com/lwota/lwota/server/credentials"
)

// CredentialWriter stores and revokes PSKs (credentials.Manager).
type CredentialWriter interface {
	Put(ctx context.Context, endpoint, identity string, key []byte) error
	Delete(ctx context.Context, endpoint string) error
}

// SecretSealer seals a certificate account's private key (credentials.Manager).
type SecretSealer interface {
	SealSecret(endpoint, label string, secret []byte) (*credentials.Sealed, error)
}

// PSK is a pre-shared key and its identity, in the clear, on its way to a credential store.
type PSK struct {
	Identity string
	Key      []byte
}

// Admin manages configurations, bootstrap PSKs and the sessions' history for the API and CLI;
// it needs no listener.
type Admin struct {
	store Store
	bs    CredentialWriter // bootstrap PSKs
	dm    CredentialWriter // DM PSKs (the device's credential with lwota's DM server)
	now   func() time.Time
}

// NewAdmin returns the Admin over store and the two credential stores.
func NewAdmin(store Store, bs, dm CredentialWriter) *Admin {
	return &Admin{store: store, bs: bs, dm: dm, now: time.Now}
}

// SetConfig checks and stores c. dm, when given, is the device's DM PSK (an endpoint
// configuration of PSK mode stored, which it implies); bs, when given, is the device's bootstrap
// PSK. Keys are stored before the configuration, so that a stored configuration never names a
// key that is not there yet.
func (a *Admin) SetConfig(ctx context.Context, c *Config, dm, bs *PSK) error {
	if dm != nil {
		if c.PSK == "" {
			c.PSK = PSKStored
		}
		if c.PSK != PSKStored {
			return fmt.Errorf("%w: a DM PSK is given with psk mode %q: want stored", ErrInvalid, c.PSK)
		}
	}
	if bs != nil && c.Scope != ScopeEndpoint {
		return fmt.Errorf("%w: a bootstrap PSK belongs to one endpoint", ErrInvalid)
	}
	if err := c.Normalize(); err != nil {
		return err
	}
	if c.X509 != nil && len(c.X509.PrivateKey) > 0 {
		sealer, ok := a.dm.(SecretSealer)
		if !ok {
			return fmt.Errorf("bootstrap: certificate account of %s: the credential store cannot seal a private key", c.Name)
		}
		sealed, err := sealer.SealSecret(c.Name, SecretLabelX509Key, c.X509.PrivateKey)
		if err != nil {
			return fmt.Errorf("bootstrap: certificate account of %s: %w", c.Name, err)
		}
		c.X509.SealedKey, c.X509.PrivateKey = sealed, nil
	}
	if dm != nil {
		if err := a.dm.Put(ctx, c.Name, dm.Identity, dm.Key); err != nil {
			return fmt.Errorf("bootstrap: DM PSK of %s: %w", c.Name, err)
		}
	}
	if bs != nil {
		if err := a.bs.Put(ctx, c.Name, bs.Identity, bs.Key); err != nil {
			return fmt.Errorf("bootstrap: bootstrap PSK of %s: %w", c.Name, err)
		}
	}
	c.UpdatedAt = a.now().UTC()
	if err := a.store.SaveBootstrapConfig(ctx, c); err != nil {
		return fmt.Errorf("bootstrap: save config %s:%s: %w", c.Scope, c.Name, err)
	}
	return nil
}

// Config returns a configuration.
func (a *Admin) Config(ctx context.Context, scope Scope, name string) (*Config, error) {
	return a.store.BootstrapConfig(ctx, scope, name)
}

// Configs lists every configuration.
func (a *Admin) Configs(ctx context.Context) ([]*Config, error) {
	return a.store.ListBootstrapConfigs(ctx)
}

// DeleteConfig removes a configuration (keys stay: they are the device's).
func (a *Admin) DeleteConfig(ctx context.Context, scope Scope, name string) error {
	return a.store.DeleteBootstrapConfig(ctx, scope, name)
}

// Sessions is endpoint's bootstrap history, newest first.
func (a *Admin) Sessions(ctx context.Context, endpoint string, limit int) ([]*Session, error) {
	return a.store.BootstrapSessions(ctx, endpoint, limit)
}
