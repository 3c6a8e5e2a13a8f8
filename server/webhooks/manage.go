package webhooks

import (
	"context"
	"fmt"
)

// Create validates and stores a subscription (see NewSubscription); its Secret is set, for the
// answer that shows it once.
func (d *Dispatcher) Create(ctx context.Context, url string, kinds []string, secret string, enabled bool, by string) (*Subscription, error) {
	sub, err := NewSubscription(url, kinds, secret, enabled, by, d.cfg.Now())
	if err != nil {
		return nil, err
	}
	if err := d.store.CreateSubscription(ctx, sub); err != nil {
		return nil, fmt.Errorf("webhooks: create: %w", err)
	}
	return sub, nil
}

// Get returns a subscription, or an error matching ErrNotFound.
func (d *Dispatcher) Get(ctx context.Context, id string) (*Subscription, error) {
	return d.store.Subscription(ctx, id)
}

// List returns every subscription, oldest first.
func (d *Dispatcher) List(ctx context.Context) ([]*Subscription, error) {
	return d.store.ListSubscriptions(ctx)
}

// Delete removes a subscription and its deliveries; ErrNotFound when there is none.
func (d *Dispatcher) Delete(ctx context.Context, id string) error {
	return d.store.DeleteSubscription(ctx, id)
}

// Deliveries returns a subscription's deliveries f selects, newest first; ErrNotFound for an
// unknown subscription, ErrInvalid for an unknown state.
func (d *Dispatcher) Deliveries(ctx context.Context, f DeliveryFilter) ([]*Delivery, error) {
	if f.State != "" && !f.State.Valid() {
		return nil, fmt.Errorf("%w: state must be pending, delivered or dead, not %q", ErrInvalid, f.State)
	}
	if _, err := d.store.Subscription(ctx, f.SubscriptionID); err != nil {
		return nil, err
	}
	return d.store.ListDeliveries(ctx, f)
}

// Retry makes a delivery pending again with a fresh set of attempts and age, due now (a dead
// letter after the receiver was fixed, or a delivered one to send again), and wakes the
// dispatcher.
func (d *Dispatcher) Retry(ctx context.Context, subscriptionID, id string) (*Delivery, error) {
	dl, err := d.store.RetryDelivery(ctx, subscriptionID, id, d.cfg.Now())
	if err != nil {
		return nil, err
	}
	d.Wake()
	return dl, nil
}
