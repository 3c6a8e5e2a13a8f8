// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

//go:build !unix

package ccm

import "time"

// processCPU is not measured here: the benchmarks then report no CPU time.
func processCPU() time.Duration { return 0 }
