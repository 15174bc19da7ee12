#include "textflag.h"

// func Line(p unsafe.Pointer)
TEXT ·Line(SB), NOSPLIT|NOFRAME, $0-8
	MOVD	p+0(FP), R0
	PRFM	(R0), PLDL1KEEP
	RET

// func Span(p unsafe.Pointer, n uintptr)
TEXT ·Span(SB), NOSPLIT|NOFRAME, $0-16
	MOVD	p+0(FP), R0
	MOVD	n+8(FP), R1
	ADD	R0, R1
	AND	$~63, R0
loop:
	PRFM	(R0), PLDL1KEEP
	ADD	$64, R0
	CMP	R1, R0
	BLO	loop
	RET

// func write(p unsafe.Pointer)
TEXT ·write(SB), NOSPLIT|NOFRAME, $0-8
	MOVD	p+0(FP), R0
	PRFM	(R0), PSTL1KEEP
	RET

// func writeSpan(p unsafe.Pointer, n uintptr)
TEXT ·writeSpan(SB), NOSPLIT|NOFRAME, $0-16
	MOVD	p+0(FP), R0
	MOVD	n+8(FP), R1
	ADD	R0, R1
	AND	$~63, R0
wloop:
	PRFM	(R0), PSTL1KEEP
	ADD	$64, R0
	CMP	R1, R0
	BLO	wloop
	RET
