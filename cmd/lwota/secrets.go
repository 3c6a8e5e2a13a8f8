package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lwota/lwota/firmware/transfer"
	"github.com/lwota/lwota/server/credentials"
	"github.com/lwota/lwota/server/credentials/keyring"
	"github.com/lwota/lwota/storage/sqlstore"
)

// nodeSecrets are the download-token and credential-sealing keys of this node: from DATA_DIR
// on a single node, from the database keyring (sealed under --cluster-key) in a cluster.
type nodeSecrets struct {
	ring   *keyring.Ring // nil on a single node
	sets   map[string]keyring.Set
	tokens *transfer.Tokens
	creds  *credentials.Manager // device_credentials: sealed[0]
	store  sealedStore
	// bootstrap is the table of bootstrap PSKs, sealed with the same keys as store's.
	bootstrap sealedStore
	log       *slog.Logger
	// sealed is every table of credentials sealed with the credential-seal keys, with its
	// Manager: each gets the keys, and is re-sealed by Reseal.
	sealed  []sealedTable
	credKey []byte // the node-local credential key; nil with a keyring

	mu        sync.Mutex
	current   map[string]keyring.Set // what apply last put to use
	refreshed map[string]time.Time   // last on-demand reload per purpose
}

// sealedStore is one table of sealed credentials (sqlstore's device_credentials).
type sealedStore interface {
	credentials.Store
	credentials.ResealStore
}

type sealedTable struct {
	m     *credentials.Manager
	store credentials.ResealStore
}

// newManager returns a credential Manager over store keyed like every other table of sealed
// credentials: by the node-local key, or by the keyring's credential-seal keys (following
// rotations). component names it in logs.
func (n *nodeSecrets) newManager(store sealedStore, component string) (*credentials.Manager, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	key := n.credKey
	set, clustered := n.current[keyring.CredentialSeal]
	if clustered {
		key = set.Active().Secret
	}
	m, err := credentials.New(store, key, n.log.With("component", component))
	if err != nil {
		return nil, err
	}
	if clustered {
		if err := setSealKeys(m, set); err != nil {
			return nil, err
		}
		m.SetRefresh(func(ctx context.Context) bool { return n.refresh(ctx, keyring.CredentialSeal) })
	}
	n.sealed = append(n.sealed, sealedTable{m, store})
	return m, nil
}

func setSealKeys(m *credentials.Manager, set keyring.Set) error {
	keys := make(map[uint32][]byte, len(set.Keys))
	for _, k := range set.Keys {
		keys[k.ID] = k.Secret
	}
	return m.SetKeys(set.Active().ID, keys)
}

// minRefreshGap bounds on-demand keyring reloads (a token no key verifies, a row sealed with an
// unknown key) to one per purpose and interval: forged tokens cannot load the database.
const minRefreshGap = 500 * time.Millisecond

// refresh reloads purpose's keys now, at most once per minRefreshGap, and reports whether they
// changed: a rotation made on another node is used before this node's next poll.
func (n *nodeSecrets) refresh(ctx context.Context, purpose string) bool {
	n.mu.Lock()
	if time.Since(n.refreshed[purpose]) < minRefreshGap {
		n.mu.Unlock()
		return false
	}
	n.refreshed[purpose] = time.Now()
	n.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	set, err := n.ring.Load(ctx, purpose)
	if err != nil {
		n.log.Warn("cluster keys not reloaded", "purpose", purpose, "err", err)
		return false
	}
	n.mu.Lock()
	same := set.Equal(n.current[purpose])
	n.mu.Unlock()
	if same {
		return false
	}
	if err := n.apply(set); err != nil {
		n.log.Error("cluster keys not applied", "purpose", purpose, "err", err)
		return false
	}
	n.log.Info("cluster keys reloaded on demand", "purpose", purpose, "active", set.Active().ID)
	return true
}

// openSecrets loads (or creates) the keys and builds the token minter and credential manager
// keyed by them.
func openSecrets(ctx context.Context, cfg serveConfig, store *sqlstore.Store, logger *slog.Logger) (*nodeSecrets, error) {
	n := &nodeSecrets{log: logger, store: store, bootstrap: store.BootstrapCredentials(), current: map[string]keyring.Set{}, refreshed: map[string]time.Time{}}
	if cfg.ClusterKey == "" {
		tokenKey, err := urlSecret(filepath.Join(cfg.DataDir, "download-token.key"))
		if err != nil {
			return nil, err
		}
		if n.credKey, err = credentialKey(cfg); err != nil {
			return nil, err
		}
		n.tokens = transfer.NewTokens(tokenKey, nil)
		n.creds, err = n.newManager(store, "credentials")
		return n, err
	}
	kek, err := keyring.ParseClusterKey(cfg.ClusterKey)
	if err != nil {
		return nil, fmt.Errorf("serve: --cluster-key: %w", err)
	}
	if n.ring, err = keyring.New(store, kek, logger.With("component", "keyring")); err != nil {
		return nil, err
	}
	imported, err := importedKeys(cfg)
	if err != nil {
		return nil, err
	}
	if err := n.checkUnsealable(ctx, imported); err != nil {
		return nil, err
	}
	if n.sets, err = n.ring.Open(ctx, imported); err != nil {
		return nil, fmt.Errorf("serve: cluster keys: %w", err)
	}
	n.tokens = transfer.NewTokens(n.sets[keyring.DownloadToken].Active().Secret, nil)
	for _, set := range n.sets {
		if err := n.apply(set); err != nil {
			return nil, err
		}
	}
	n.tokens.SetRefresh(func() bool { return n.refresh(context.Background(), keyring.DownloadToken) })
	if n.creds, err = n.newManager(store, "credentials"); err != nil {
		return nil, err
	}
	return n, nil
}

// checkUnsealable refuses to create a fresh credential-seal key over stored credentials: they
// were sealed with a node-local key, and a new key would make every one of them unreadable.
func (n *nodeSecrets) checkUnsealable(ctx context.Context, imported map[string][]byte) error {
	if imported[keyring.CredentialSeal] != nil {
		return nil
	}
	if _, err := n.ring.Load(ctx, keyring.CredentialSeal); !errors.Is(err, keyring.ErrNotFound) {
		return nil // keys exist (or Open reports the error)
	}
	for _, table := range []sealedStore{n.store, n.bootstrap} {
		rows, err := table.CredentialsNotSealedWith(ctx, 0, "", 1) // key ids start at 1: any row
		if err != nil {
			return fmt.Errorf("serve: cluster keys: %w", err)
		}
		if len(rows) == 0 {
			continue
		}
		return errors.New("serve: the database holds device credentials sealed with a node-local key and no cluster keys yet: " +
			"start the node that holds DATA_DIR/credential.key (or --credential-key) once with --cluster-key and --cluster-import-keys first (docs/cluster.md)")
	}
	return nil
}

// importedKeys are the node-local keys --cluster-import-keys moves into an empty keyring: the
// existing DATA_DIR files (or --credential-key), so tokens already handed out and PSKs already
// sealed stay valid. Nothing is created here.
func importedKeys(cfg serveConfig) (map[string][]byte, error) {
	if !cfg.ClusterImportKeys {
		return nil, nil
	}
	out := map[string][]byte{}
	read := func(purpose, path string) error {
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			return nil // nothing to import: the keyring makes a new key
		}
		if err != nil {
			return fmt.Errorf("serve: import %s key: %w", purpose, err)
		}
		key, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(key) != keyring.KeyLen {
			return fmt.Errorf("serve: import %s key %s: not %d bytes of hex", purpose, path, keyring.KeyLen)
		}
		out[purpose] = key
		return nil
	}
	if err := read(keyring.DownloadToken, filepath.Join(cfg.DataDir, "download-token.key")); err != nil {
		return nil, err
	}
	if cfg.CredentialKey != "" {
		key, err := credentialKey(cfg)
		if err != nil {
			return nil, err
		}
		out[keyring.CredentialSeal] = key
	} else if err := read(keyring.CredentialSeal, filepath.Join(cfg.DataDir, "credential.key")); err != nil {
		return nil, err
	}
	return out, nil
}

// apply puts a purpose's keys to use: the active one mints or seals, the accepted ones still
// verify or open.
func (n *nodeSecrets) apply(set keyring.Set) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if cur, ok := n.current[set.Purpose]; ok && set.Active().ID < cur.Active().ID {
		return nil // read before a rotation another path already applied: keep the newer keys
	}
	switch set.Purpose {
	case keyring.DownloadToken:
		accepted := make([][]byte, 0, len(set.Keys)-1)
		for _, k := range set.Keys[1:] {
			accepted = append(accepted, k.Secret)
		}
		n.tokens.SetSecrets(set.Active().Secret, accepted...)
	case keyring.CredentialSeal:
		for _, t := range n.sealed {
			if err := setSealKeys(t.m, set); err != nil {
				return err
			}
		}
	}
	n.current[set.Purpose] = set
	return nil
}

// errNoKeyring: the node keeps its keys in DATA_DIR, so there is nothing to rotate.
var errNoKeyring = errors.New("cluster keys: this node runs without --cluster-key; its keys are in DATA_DIR")

// Rotate makes a new active key for purpose and uses it here at once; other nodes pick it up at
// their next poll.
func (n *nodeSecrets) Rotate(ctx context.Context, purpose string) (keyring.Set, error) {
	if n.ring == nil {
		return keyring.Set{}, errNoKeyring
	}
	set, err := n.ring.Rotate(ctx, purpose)
	if err != nil {
		return keyring.Set{}, err
	}
	return set, n.apply(set)
}

// Retire deletes an accepted key of purpose.
func (n *nodeSecrets) Retire(ctx context.Context, purpose string, id uint32) (keyring.Set, error) {
	if n.ring == nil {
		return keyring.Set{}, errNoKeyring
	}
	set, err := n.ring.Retire(ctx, purpose, id)
	if err != nil {
		return keyring.Set{}, err
	}
	return set, n.apply(set)
}

// Keys returns every purpose's keys as stored now.
func (n *nodeSecrets) Keys(ctx context.Context) ([]keyring.Set, error) {
	if n.ring == nil {
		return nil, errNoKeyring
	}
	sets := make([]keyring.Set, 0, len(keyring.Purposes))
	for _, p := range keyring.Purposes {
		set, err := n.ring.Load(ctx, p)
		if err != nil {
			return nil, err
		}
		sets = append(sets, set)
	}
	return sets, nil
}

// Reseal moves the credential rows sealed with older keys to the active key (after loading the
// keyring, so a rotation made on another node is the one used).
func (n *nodeSecrets) Reseal(ctx context.Context) (credentials.ResealResult, error) {
	if n.ring == nil {
		return credentials.ResealResult{}, errNoKeyring
	}
	set, err := n.ring.Load(ctx, keyring.CredentialSeal)
	if err != nil {
		return credentials.ResealResult{}, err
	}
	if err := n.apply(set); err != nil {
		return credentials.ResealResult{}, err
	}
	n.mu.Lock()
	tables := slices.Clone(n.sealed)
	n.mu.Unlock()
	var sum credentials.ResealResult
	for _, t := range tables {
		res, err := t.m.Reseal(ctx, t.store, resealBatch)
		sum.Resealed += res.Resealed
		sum.Skipped += res.Skipped
		if err != nil {
			return sum, err
		}
	}
	return sum, nil
}

// resealBatch is how many credential rows one re-seal query reads.
const resealBatch = 200
