package credentials

import (
	"context"
	"errors"
	"fmt"
)

// ResealStore is what Reseal needs beyond Store: the rows sealed with an older key, by endpoint,
// and a conditional rewrite of one row.
type ResealStore interface {
	// CredentialsNotSealedWith returns up to limit credentials not sealed with keyID whose
	// endpoint sorts after after, by endpoint.
	CredentialsNotSealedWith(ctx context.Context, keyID uint32, after string, limit int) ([]*Sealed, error)
	// ResealCredential writes c's sealed key over its row while the row still holds oldNonce;
	// a row changed meanwhile is ErrNotFound and stays as it is.
	ResealCredential(ctx context.Context, c *Sealed, oldNonce []byte) error
}

// ResealResult counts what a Reseal did.
type ResealResult struct {
	Resealed int // rows moved to the active key
	Skipped  int // rows written meanwhile (already sealed with a current key)
}

// Reseal moves every credential row sealed with an older key to the active key, batch rows at
// a time, so the older key can be retired afterwards. It is resumable and idempotent: it
// starts from the rows still on older keys, and an interrupted sweep just leaves rows behind
// for the next one. A row that changes while it is re-sealed keeps the newer write.
func (m *Manager) Reseal(ctx context.Context, store ResealStore, batch int) (ResealResult, error) {
	var res ResealResult
	if batch < 1 {
		return res, fmt.Errorf("%w: re-seal batch %d must be at least 1", ErrInvalid, batch)
	}
	active := m.keys.Load().active
	after := ""
	for {
		rows, err := store.CredentialsNotSealedWith(ctx, active, after, batch)
		if err != nil {
			return res, fmt.Errorf("credentials: re-seal: %w", err)
		}
		for _, old := range rows {
			c, err := m.open(ctx, old)
			if err != nil {
				return res, fmt.Errorf("credentials: re-seal: %w", err)
			}
			s, err := m.seal(c.Endpoint, c.Identity, c.Key, c.CreatedAt, c.UpdatedAt)
			if err != nil {
				return res, err
			}
			switch err := store.ResealCredential(ctx, s, old.Nonce); {
			case errors.Is(err, ErrNotFound):
				res.Skipped++
			case err != nil:
				return res, fmt.Errorf("credentials: re-seal: %w", err)
			default:
				res.Resealed++
			}
			after = old.Endpoint
		}
		if len(rows) < batch {
			m.log.Info("psk credentials re-sealed", "key_id", active, "resealed", res.Resealed, "skipped", res.Skipped)
			return res, nil
		}
	}
}
