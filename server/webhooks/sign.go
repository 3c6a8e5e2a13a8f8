package webhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Headers of every delivery request.
const (
	HeaderDelivery  = "X-Lwota-Delivery"  // the delivery id, for deduplication
	HeaderEvent     = "X-Lwota-Event"     // the event type: update_job, campaign, registered, deregistered
	HeaderSignature = "X-Lwota-Signature" // "sha256=" + hex HMAC-SHA256(secret, timestamp + "." + body)
	HeaderTimestamp = "X-Lwota-Timestamp" // unix seconds of the attempt, part of the signed text
)

// Body is the JSON body of a delivery request.
type Body struct {
	ID           string          `json:"id"`   // the delivery id
	Kind         string          `json:"kind"` // update_job, campaign, registration
	Type         string          `json:"type"` // the event type
	Time         time.Time       `json:"time"` // when the event happened
	Subscription string          `json:"subscription"`
	Endpoint     string          `json:"endpoint,omitempty"`
	Data         json.RawMessage `json:"data"`
}

// Encode returns the body of d: the same bytes for every attempt.
func Encode(d *Delivery) ([]byte, error) {
	data := d.Payload
	if len(data) == 0 {
		data = json.RawMessage("{}")
	}
	b, err := json.Marshal(Body{ID: d.ID, Kind: d.Kind, Type: d.EventType, Time: d.At.UTC(),
		Subscription: d.SubscriptionID, Endpoint: d.Endpoint, Data: data})
	if err != nil {
		return nil, fmt.Errorf("webhooks: encode delivery %s: %w", d.ID, err)
	}
	return b, nil
}

// Sign returns the X-Lwota-Signature value of body sent at timestamp (unix seconds).
func Sign(secret string, timestamp int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(timestamp, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verification failures of Verify.
var (
	ErrBadSignature = errors.New("webhooks: signature does not match")
	ErrStale        = errors.New("webhooks: timestamp outside the tolerance")
)

// Verify is the receiver's side of Sign: it checks the signature of body against the timestamp
// and signature headers, and that the timestamp is within tolerance of now (0: not checked),
// which bounds how long a captured request can be replayed.
func Verify(secret, timestampHeader, signatureHeader string, body []byte, now time.Time, tolerance time.Duration) error {
	ts, err := strconv.ParseInt(strings.TrimSpace(timestampHeader), 10, 64)
	if err != nil {
		return fmt.Errorf("%w: bad %s %q", ErrBadSignature, HeaderTimestamp, timestampHeader)
	}
	want := Sign(secret, ts, body)
	if !hmac.Equal([]byte(want), []byte(strings.TrimSpace(signatureHeader))) {
		return ErrBadSignature
	}
	if tolerance > 0 {
		if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
			return ErrStale
		}
	}
	return nil
}

// Backoff spaces the attempts of a delivery: after the n-th failed attempt the next one waits
// Base·2^(n-1), at most Max, with "equal jitter" (a random half of it), so receivers that come
// back are not hit by every delivery at once.
type Backoff struct {
	Base time.Duration
	Max  time.Duration
}

// Delay is the wait after failed attempts (1 or more); rnd is uniform in [0, 1).
func (b Backoff) Delay(failed int, rnd float64) time.Duration {
	d := b.Base
	for i := 1; i < failed && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	half := d / 2
	return half + time.Duration(rnd*float64(d-half))
}
