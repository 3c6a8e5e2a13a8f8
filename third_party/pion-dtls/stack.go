// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

// lwota patch 15: the handshake's two goroutines grow their stacks once, at their start.
//
// A goroutine starts on a 2 KiB stack. The state machine and the read loop each need about
// 8 KiB in the first flight (frames of 0.4-1 KiB: handleIncomingPacket, flight4Generate, the
// cipher suite's Init and Decrypt), so each stack was copied twice (2 -> 4 -> 8 KiB), deep in
// the call chain. The cost of a copy is mostly per frame on the stack (each frame's pointers
// are found through the function's tables and adjusted), and with ten to twenty frames it was
// about 12% of a DTLS server's CPU per PSK handshake. Grown here, on a stack of two frames,
// the copy costs little, and the handshake's calls then find the room they need.

// handshakeStackFrame is the size of growStack's frame: a 2 KiB stack that needs this much
// more is doubled until it fits, to 8 KiB.
const handshakeStackFrame = 5 << 10

// growStack makes the calling goroutine's stack at least 8 KiB by calling a function with a
// large frame. Call it first thing in a new goroutine, while its stack is shallow.
//
//go:noinline
func growStack() {
	var frame [handshakeStackFrame]byte
	keepFrame(frame[:])
}

// keepFrame keeps growStack's frame from being optimised away.
//
//go:noinline
func keepFrame([]byte) {}
