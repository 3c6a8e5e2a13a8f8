// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

//go:build race

package ciphersuite

// raceEnabled: under the race detector sync.Pool drops items at random, so allocation counts
// that rely on a pool do not hold.
const raceEnabled = true
