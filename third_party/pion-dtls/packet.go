// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

import (
	"github.com/pion/dtls/v3/pkg/protocol/recordlayer"
)

type packet struct {
	record                   *recordlayer.RecordLayer
	shouldEncrypt            bool
	shouldWrapCID            bool
	resetLocalSequenceNumber bool
	// pooled is the buffer (from recordBufs) the record was marshalled into: writePackets
	// gives it back once the datagram is written (lwota patch 9).
	pooled *[]byte
}
