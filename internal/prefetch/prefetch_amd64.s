#include "textflag.h"

// func Line(p unsafe.Pointer)
TEXT ·Line(SB), NOSPLIT|NOFRAME, $0-8
	MOVQ	p+0(FP), AX
	PREFETCHT0	(AX)
	RET

// func Span(p unsafe.Pointer, n uintptr)
TEXT ·Span(SB), NOSPLIT|NOFRAME, $0-16
	MOVQ	p+0(FP), AX
	MOVQ	n+8(FP), BX
	ADDQ	AX, BX
	ANDQ	$~63, AX
loop:
	PREFETCHT0	(AX)
	ADDQ	$64, AX
	CMPQ	AX, BX
	JB	loop
	RET

// func write(p unsafe.Pointer)
TEXT ·write(SB), NOSPLIT|NOFRAME, $0-8
	MOVQ	p+0(FP), AX
	// PREFETCHW (AX): 0F 0D /1 (the Go assembler has no mnemonic for it)
	BYTE	$0x0f; BYTE $0x0d; BYTE $0x08
	RET

// func writeSpan(p unsafe.Pointer, n uintptr)
TEXT ·writeSpan(SB), NOSPLIT|NOFRAME, $0-16
	MOVQ	p+0(FP), AX
	MOVQ	n+8(FP), BX
	ADDQ	AX, BX
	ANDQ	$~63, AX
wloop:
	BYTE	$0x0f; BYTE $0x0d; BYTE $0x08 // PREFETCHW (AX)
	ADDQ	$64, AX
	CMPQ	AX, BX
	JB	wloop
	RET

// func hasWrite() bool: CPUID 0x80000001 ECX bit 8 (PRFCHW, AMD's 3DNowPrefetch): whether
// PREFETCHW is a prefetch here.
TEXT ·hasWrite(SB), NOSPLIT, $0-1
	MOVL	$0x80000000, AX
	CPUID
	CMPL	AX, $0x80000001
	JB	none
	MOVL	$0x80000001, AX
	XORL	CX, CX
	CPUID
	SHRL	$8, CX
	ANDL	$1, CX
	MOVB	CX, ret+0(FP)
	RET
none:
	MOVB	$0, ret+0(FP)
	RET
