//go:build amd64 && gc && !purego

#include "textflag.h"

// Sixteen copies of '"', '\\' and 0x1F.
DATA plainQuote<>+0(SB)/8, $0x2222222222222222
DATA plainQuote<>+8(SB)/8, $0x2222222222222222
GLOBL plainQuote<>(SB), RODATA|NOPTR, $16
DATA plainBackslash<>+0(SB)/8, $0x5c5c5c5c5c5c5c5c
DATA plainBackslash<>+8(SB)/8, $0x5c5c5c5c5c5c5c5c
GLOBL plainBackslash<>(SB), RODATA|NOPTR, $16
DATA plainCtl<>+0(SB)/8, $0x1f1f1f1f1f1f1f1f
DATA plainCtl<>+8(SB)/8, $0x1f1f1f1f1f1f1f1f
GLOBL plainCtl<>(SB), RODATA|NOPTR, $16

// The three loops share their tests. A block of 16 bytes is tested:
// equal to '"' or '\\', or min(b, 0x1F) == b (below 0x20); PMOVMSKB turns
// the tests into a bit per byte, and of the block itself gives the bytes
// above 0x7F, kept where DX (0xFFFF or 0) says so.

// CONSTS loads the bytes tested for into X1-X3.
#define CONSTS \
	MOVOU	plainQuote<>(SB), X1; \
	MOVOU	plainBackslash<>(SB), X2; \
	MOVOU	plainCtl<>(SB), X3

// SPECIAL16 sets m to the special bytes of block x (flags: ZF if none),
// with t1-t3 and tmp as scratch.
#define SPECIAL16(x, t1, t2, t3, m, tmp) \
	MOVOU	x, t1; \
	PCMPEQB	X1, t1; \
	MOVOU	x, t2; \
	PCMPEQB	X2, t2; \
	POR	t2, t1; \
	MOVOU	x, t3; \
	PMINUB	X3, t3; \
	PCMPEQB	x, t3; \
	POR	t3, t1; \
	PMOVMSKB	t1, m; \
	PMOVMSKB	x, tmp; \
	ANDL	DX, tmp; \
	ORL	tmp, m

// LOADPAIR loads the 32 bytes of src at AX into X0 and X8, stores them to
// dst at BX, and sets R12 to their special bytes (X0's the low 16 bits;
// ZF if none). It clobbers X4-X6, X9-X11, R9 and R13.
#define LOADPAIR \
	MOVOU	(SI)(AX*1), X0; \
	MOVOU	16(SI)(AX*1), X8; \
	MOVOU	X0, (DI)(BX*1); \
	MOVOU	X8, 16(DI)(BX*1); \
	SPECIAL16(X0, X4, X5, X6, R12, R13); \
	SPECIAL16(X8, X9, X10, X11, R9, R13); \
	SHLL	$16, R9; \
	ORL	R9, R12

// LOADONE is LOADPAIR for the 16 bytes at AX.
#define LOADONE \
	MOVOU	(SI)(AX*1), X0; \
	MOVOU	X0, (DI)(BX*1); \
	SPECIAL16(X0, X4, X5, X6, R12, R13)

// func copyPlainBlocks(dst, src []byte, high uint32) int
//
// Two blocks a round while 32 bytes are left, then one; src and dst
// advance together (BX is AX).
TEXT ·copyPlainBlocks(SB), NOSPLIT, $0-64
	MOVQ	dst_base+0(FP), DI
	MOVQ	src_base+24(FP), SI
	MOVQ	src_len+32(FP), CX
	MOVL	high+48(FP), DX
	CONSTS
	XORQ	AX, AX
	XORQ	BX, BX

pair:
	LEAQ	32(AX), R10
	CMPQ	R10, CX
	JHI	single
	LOADPAIR
	JNZ	found
	ADDQ	$32, AX
	MOVQ	AX, BX
	JMP	pair

single:
	LEAQ	16(AX), R10
	CMPQ	R10, CX
	JHI	done
	LOADONE
	JNZ	found
	ADDQ	$16, AX

done:
	MOVQ	AX, ret+56(FP)
	RET

found:
	BSFL	R12, R12
	ADDQ	R12, AX
	MOVQ	AX, ret+56(FP)
	RET

// func escapeNewlines(dst, src []byte, high uint32, limit int) (n, m int)
//
// The blocks of copyPlainBlocks, with src's offset (AX) and dst's (BX)
// apart: a '\n' at the first special byte is written as `\n` (up to
// limit of them) and the loop goes on; any other special byte, limit,
// fewer than 16 bytes of src, or less room in dst than a round and an
// escape need, ends it.
TEXT ·escapeNewlines(SB), NOSPLIT, $0-80
	MOVQ	dst_base+0(FP), DI
	MOVQ	dst_len+8(FP), R8
	MOVQ	src_base+24(FP), SI
	MOVQ	src_len+32(FP), CX
	MOVL	high+48(FP), DX
	MOVQ	limit+56(FP), R11
	CONSTS
	XORQ	AX, AX
	XORQ	BX, BX

escLoop:
	LEAQ	32(AX), R10
	CMPQ	R10, CX
	JHI	escSingle
	LEAQ	34(BX), R10
	CMPQ	R10, R8
	JHI	escDone
	LOADPAIR
	JNZ	escSpecial
	ADDQ	$32, AX
	ADDQ	$32, BX
	JMP	escLoop

escSingle:
	LEAQ	16(AX), R10
	CMPQ	R10, CX
	JHI	escDone
	LEAQ	18(BX), R10
	CMPQ	R10, R8
	JHI	escDone
	LOADONE
	JNZ	escSpecial
	ADDQ	$16, AX
	ADDQ	$16, BX
	JMP	escLoop

escSpecial:
	BSFL	R12, R12
	ADDQ	R12, AX
	ADDQ	R12, BX
	MOVBLZX	(SI)(AX*1), R13
	CMPL	R13, $0x0a
	JNE	escDone
	TESTQ	R11, R11
	JEQ	escDone
	MOVB	$0x5c, (DI)(BX*1)
	MOVB	$0x6e, 1(DI)(BX*1)
	INCQ	AX
	ADDQ	$2, BX
	DECQ	R11
	JMP	escLoop

escDone:
	MOVQ	AX, n+64(FP)
	MOVQ	BX, m+72(FP)
	RET

// func unescapeNewlines(dst, src []byte, high uint32) (n, m int)
//
// escapeNewlines' inverse: a `\n` at the first special byte is written as
// '\n' and the loop goes on; any other special byte (another escape, a
// '\\' that ends src), fewer than 16 bytes of src, or less room in dst
// than a round needs, ends it.
TEXT ·unescapeNewlines(SB), NOSPLIT, $0-72
	MOVQ	dst_base+0(FP), DI
	MOVQ	dst_len+8(FP), R8
	MOVQ	src_base+24(FP), SI
	MOVQ	src_len+32(FP), CX
	MOVL	high+48(FP), DX
	CONSTS
	XORQ	AX, AX
	XORQ	BX, BX

unLoop:
	LEAQ	32(AX), R10
	CMPQ	R10, CX
	JHI	unSingle
	LEAQ	32(BX), R10
	CMPQ	R10, R8
	JHI	unDone
	LOADPAIR
	JNZ	unSpecial
	ADDQ	$32, AX
	ADDQ	$32, BX
	JMP	unLoop

unSingle:
	LEAQ	16(AX), R10
	CMPQ	R10, CX
	JHI	unDone
	LEAQ	16(BX), R10
	CMPQ	R10, R8
	JHI	unDone
	LOADONE
	JNZ	unSpecial
	ADDQ	$16, AX
	ADDQ	$16, BX
	JMP	unLoop

unSpecial:
	BSFL	R12, R12
	ADDQ	R12, AX
	ADDQ	R12, BX
	MOVBLZX	(SI)(AX*1), R13
	CMPL	R13, $0x5c
	JNE	unDone
	LEAQ	1(AX), R9
	CMPQ	R9, CX
	JAE	unDone
	MOVBLZX	1(SI)(AX*1), R13
	CMPL	R13, $0x6e
	JNE	unDone
	MOVB	$0x0a, (DI)(BX*1)
	ADDQ	$2, AX
	INCQ	BX
	JMP	unLoop

unDone:
	MOVQ	AX, n+56(FP)
	MOVQ	BX, m+64(FP)
	RET
