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

// func copyPlainBlocks(dst, src []byte, high uint32) int
//
// Each block of 16 bytes is loaded, stored to dst, and tested: equal to
// '"' or '\\', or min(b, 0x1F) == b (below 0x20); PMOVMSKB turns the
// tests into a bit per byte, and of the block itself gives the bytes above
// 0x7F, kept if high says so. Two blocks a round while 32 bytes are left,
// then one.
TEXT ·copyPlainBlocks(SB), NOSPLIT, $0-64
	MOVQ	dst_base+0(FP), DI
	MOVQ	src_base+24(FP), SI
	MOVQ	src_len+32(FP), CX
	MOVL	high+48(FP), DX
	MOVOU	plainQuote<>(SB), X1
	MOVOU	plainBackslash<>(SB), X2
	MOVOU	plainCtl<>(SB), X3
	XORQ	AX, AX

pair:
	LEAQ	32(AX), R9
	CMPQ	R9, CX
	JHI	single
	MOVOU	(SI)(AX*1), X0
	MOVOU	16(SI)(AX*1), X8
	MOVOU	X0, (DI)(AX*1)
	MOVOU	X8, 16(DI)(AX*1)

	MOVOU	X0, X4
	PCMPEQB	X1, X4
	MOVOU	X0, X5
	PCMPEQB	X2, X5
	POR	X5, X4
	MOVOU	X0, X6
	PMINUB	X3, X6
	PCMPEQB	X0, X6
	POR	X6, X4

	MOVOU	X8, X9
	PCMPEQB	X1, X9
	MOVOU	X8, X10
	PCMPEQB	X2, X10
	POR	X10, X9
	MOVOU	X8, X11
	PMINUB	X3, X11
	PCMPEQB	X8, X11
	POR	X11, X9

	PMOVMSKB	X4, R10
	PMOVMSKB	X0, R11
	ANDL	DX, R11
	ORL	R11, R10
	PMOVMSKB	X9, R12
	PMOVMSKB	X8, R13
	ANDL	DX, R13
	ORL	R13, R12
	SHLL	$16, R12
	ORL	R12, R10
	JNZ	found
	MOVQ	R9, AX
	JMP	pair

single:
	LEAQ	16(AX), R9
	CMPQ	R9, CX
	JHI	done
	MOVOU	(SI)(AX*1), X0
	MOVOU	X0, (DI)(AX*1)
	MOVOU	X0, X4
	PCMPEQB	X1, X4
	MOVOU	X0, X5
	PCMPEQB	X2, X5
	POR	X5, X4
	MOVOU	X0, X6
	PMINUB	X3, X6
	PCMPEQB	X0, X6
	POR	X6, X4
	PMOVMSKB	X4, R10
	PMOVMSKB	X0, R11
	ANDL	DX, R11
	ORL	R11, R10
	JNZ	found
	MOVQ	R9, AX

done:
	MOVQ	AX, ret+56(FP)
	RET

found:
	BSFL	R10, R10
	ADDQ	R10, AX
	MOVQ	AX, ret+56(FP)
	RET
