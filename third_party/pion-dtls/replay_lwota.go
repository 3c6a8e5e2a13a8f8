// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

import (
	"github.com/pion/dtls/v3/pkg/protocol/recordlayer"
	"github.com/pion/transport/v5/replaydetector"
)

// newReplayDetector returns the anti-replay window of an epoch (RFC 6347 §4.1.2.6). lwota
// patch 29: used through CheckSeq and Accept, which pass a Token by value, rather than Check,
// which returns a closure allocated per record; replaydetector.New documents that its detector
// implements CheckAccepter, with the same window: Accept(CheckSeq(seq)) marks seq as Check's
// closure did.
func newReplayDetector(window uint) replaydetector.CheckAccepter {
	return replaydetector.New(window, recordlayer.MaxSequenceNumber).(replaydetector.CheckAccepter) //nolint:forcetypeassert
}
