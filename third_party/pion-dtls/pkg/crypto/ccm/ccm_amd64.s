// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

//go:build amd64 && !purego

#include "textflag.h"

// lwota patch 14: AES-128-CCM with AES-NI. The CBC-MAC is serial (each block waits for the
// previous one's ten rounds), so its AESENC latency bounds CCM's speed; the CTR key stream
// block of the same position is computed in the gaps of that chain (ENC2), which makes the
// encryption nearly free. The 11 round keys stay in X5-X15 for a whole call (X15 is a scratch
// register in ABI0 functions; the ABI wrapper zeroes it again).

#define LOAD_KEYS(xk) \
	MOVUPS 0(xk), X5; \
	MOVUPS 16(xk), X6; \
	MOVUPS 32(xk), X7; \
	MOVUPS 48(xk), X8; \
	MOVUPS 64(xk), X9; \
	MOVUPS 80(xk), X10; \
	MOVUPS 96(xk), X11; \
	MOVUPS 112(xk), X12; \
	MOVUPS 128(xk), X13; \
	MOVUPS 144(xk), X14; \
	MOVUPS 160(xk), X15

// ENC1 encrypts one block in place.
#define ENC1(s) \
	PXOR       X5, s; \
	AESENC     X6, s; \
	AESENC     X7, s; \
	AESENC     X8, s; \
	AESENC     X9, s; \
	AESENC     X10, s; \
	AESENC     X11, s; \
	AESENC     X12, s; \
	AESENC     X13, s; \
	AESENC     X14, s; \
	AESENCLAST X15, s

// ENC2 encrypts two independent blocks in place, round by round.
#define ENC2(a, b) \
	PXOR       X5, a; \
	PXOR       X5, b; \
	AESENC     X6, a; \
	AESENC     X6, b; \
	AESENC     X7, a; \
	AESENC     X7, b; \
	AESENC     X8, a; \
	AESENC     X8, b; \
	AESENC     X9, a; \
	AESENC     X9, b; \
	AESENC     X10, a; \
	AESENC     X10, b; \
	AESENC     X11, a; \
	AESENC     X11, b; \
	AESENC     X12, a; \
	AESENC     X12, b; \
	AESENC     X13, a; \
	AESENC     X13, b; \
	AESENC     X14, a; \
	AESENC     X14, b; \
	AESENCLAST X15, a; \
	AESENCLAST X15, b

// ROUNDS1 and ROUNDS2 run rounds 1 to 9 (the state already holds its round-0 whitening);
// the caller picks the last round's key.
#define ROUNDS1(s) \
	AESENC X6, s; \
	AESENC X7, s; \
	AESENC X8, s; \
	AESENC X9, s; \
	AESENC X10, s; \
	AESENC X11, s; \
	AESENC X12, s; \
	AESENC X13, s; \
	AESENC X14, s

#define ROUNDS2(a, b) \
	AESENC X6, a; \
	AESENC X6, b; \
	AESENC X7, a; \
	AESENC X7, b; \
	AESENC X8, a; \
	AESENC X8, b; \
	AESENC X9, a; \
	AESENC X9, b; \
	AESENC X10, a; \
	AESENC X10, b; \
	AESENC X11, a; \
	AESENC X11, b; \
	AESENC X12, a; \
	AESENC X12, b; \
	AESENC X13, a; \
	AESENC X13, b; \
	AESENC X14, a; \
	AESENC X14, b

// CTR_BLOCK sets dst to the counter block: its first 8 bytes from R8 (in memory order), its
// last 8 the big-endian counter R9, which it then increments. A CCM counter never carries out
// of its L bytes (a message has fewer than 2^(8L) bytes), so the 64-bit sum is the L-byte one.
#define CTR_BLOCK(dst) \
	MOVQ       R8, dst; \
	MOVQ       R9, R10; \
	BSWAPQ     R10; \
	MOVQ       R10, X4; \
	PUNPCKLQDQ X4, dst; \
	INCQ       R9

// func subWord(w uint32) uint32
// SubWord of the AES key expansion: the word in all four columns, so ShiftRows moves nothing
// and AESENCLAST with a zero round key is SubBytes alone (constant time, no table).
TEXT ·subWord(SB), NOSPLIT, $0-12
	MOVL       w+0(FP), AX
	MOVQ       AX, X0
	PSHUFD     $0, X0, X0
	PXOR       X1, X1
	AESENCLAST X1, X0
	MOVQ       X0, AX
	MOVL       AX, ret+8(FP)
	RET

// func encryptBlockAES128(xk *[44]uint32, dst, src *[16]byte)
TEXT ·encryptBlockAES128(SB), NOSPLIT, $0-24
	MOVQ   xk+0(FP), AX
	MOVQ   dst+8(FP), DX
	MOVQ   src+16(FP), BX
	LOAD_KEYS(AX)
	MOVUPS (BX), X0
	ENC1(X0)
	MOVUPS X0, (DX)
	RET

// func encrypt2AES128(xk *[44]uint32, a, b *[16]byte)
// Encrypts two blocks in place, in the time of one.
TEXT ·encrypt2AES128(SB), NOSPLIT, $0-24
	MOVQ   xk+0(FP), AX
	MOVQ   a+8(FP), DX
	MOVQ   b+16(FP), BX
	LOAD_KEYS(AX)
	MOVUPS (DX), X0
	MOVUPS (BX), X1
	ENC2(X0, X1)
	MOVUPS X0, (DX)
	MOVUPS X1, (BX)
	RET

// func cbcMACAES128(xk *[44]uint32, mac *[16]byte, src *byte, blocks int)
TEXT ·cbcMACAES128(SB), NOSPLIT, $0-32
	MOVQ   xk+0(FP), AX
	MOVQ   mac+8(FP), DX
	MOVQ   src+16(FP), SI
	MOVQ   blocks+24(FP), CX
	LOAD_KEYS(AX)
	MOVUPS (DX), X0
	TESTQ  CX, CX
	JZ     macDone

macLoop:
	MOVUPS (SI), X2
	PXOR   X2, X0
	ENC1(X0)
	ADDQ   $16, SI
	DECQ   CX
	JNZ    macLoop

macDone:
	MOVUPS X0, (DX)
	RET

// The MAC chain of sealBlocksAES128 and openBlocksAES128 carries no XOR: AESENCLAST adds its
// round key last, so the key of a block's last round is rk10 ^ rk0 ^ the next plaintext block,
// and its result is already the next block's state after round 0 (mac ^ P ^ rk0). The chain is
// then ten AESENC latencies per block, not ten and two XORs.

// func sealBlocksAES128(xk *[44]uint32, mac *[16]byte, ctrHi, ctrLo uint64, dst, src *byte, blocks int)
// For each 16-byte block P of src: mac = E(mac ^ P), and dst gets P ^ E(counter block).
TEXT ·sealBlocksAES128(SB), NOSPLIT, $0-56
	MOVQ   xk+0(FP), AX
	MOVQ   mac+8(FP), DX
	MOVQ   ctrHi+16(FP), R8
	MOVQ   ctrLo+24(FP), R9
	MOVQ   dst+32(FP), DI
	MOVQ   src+40(FP), SI
	MOVQ   blocks+48(FP), CX
	LOAD_KEYS(AX)
	MOVUPS (DX), X0
	TESTQ  CX, CX
	JZ     sealDone
	MOVUPS (SI), X2
	PXOR   X2, X0
	PXOR   X5, X0
	DECQ   CX
	JZ     sealLast

sealLoop:
	// X0: this block's MAC state after round 0; X2: its plaintext.
	CTR_BLOCK(X1)
	PXOR       X5, X1
	MOVUPS     16(SI), X3
	PXOR       X5, X3
	PXOR       X15, X3
	ROUNDS2(X0, X1)
	AESENCLAST X3, X0
	AESENCLAST X15, X1
	PXOR       X2, X1
	MOVUPS     X1, (DI)
	MOVUPS     16(SI), X2
	ADDQ       $16, SI
	ADDQ       $16, DI
	DECQ       CX
	JNZ        sealLoop

sealLast:
	CTR_BLOCK(X1)
	PXOR       X5, X1
	ROUNDS2(X0, X1)
	AESENCLAST X15, X0
	AESENCLAST X15, X1
	PXOR       X2, X1
	MOVUPS     X1, (DI)

sealDone:
	MOVUPS X0, (DX)
	RET

// func openBlocksAES128(xk *[44]uint32, mac *[16]byte, ctrHi, ctrLo uint64, dst, src *byte, blocks int)
// For each 16-byte block C of src: dst gets P = C ^ E(counter block), and mac = E(mac ^ P).
// The MAC of a block needs its plaintext, and the fold above the next block's too, so the key
// stream runs two blocks ahead of the chain: the MAC of block i is computed together with the
// key stream of block i+2 (past the last block, one key stream block is computed and unused).
TEXT ·openBlocksAES128(SB), NOSPLIT, $0-56
	MOVQ   xk+0(FP), AX
	MOVQ   mac+8(FP), DX
	MOVQ   ctrHi+16(FP), R8
	MOVQ   ctrLo+24(FP), R9
	MOVQ   dst+32(FP), DI
	MOVQ   src+40(FP), SI
	MOVQ   blocks+48(FP), CX
	LOAD_KEYS(AX)
	MOVUPS (DX), X0
	TESTQ  CX, CX
	JZ     openDone
	CTR_BLOCK(X1)
	CTR_BLOCK(X3)
	ENC2(X1, X3)
	MOVUPS (SI), X2
	PXOR   X1, X2
	MOVUPS X2, (DI)
	PXOR   X2, X0
	PXOR   X5, X0
	DECQ   CX
	JZ     openLast

openLoop:
	// X0: block i's MAC state after round 0; X3: the key stream of block i+1.
	MOVUPS     16(SI), X2
	PXOR       X3, X2
	MOVUPS     X2, 16(DI)
	PXOR       X5, X2
	PXOR       X15, X2
	CTR_BLOCK(X1)
	PXOR       X5, X1
	ROUNDS2(X0, X1)
	AESENCLAST X2, X0
	AESENCLAST X15, X1
	MOVO       X1, X3
	ADDQ       $16, SI
	ADDQ       $16, DI
	DECQ       CX
	JNZ        openLoop

openLast:
	ROUNDS1(X0)
	AESENCLAST X15, X0

openDone:
	MOVUPS X0, (DX)
	RET
