package capture

import (
	"errors"
	"fmt"
)

// ErrorKind classifies capture failures so the daemon can retry what may heal on its own
// (an interface that went away or down) and stop on what will not (privilege, config).
// It implements error, so errors.Is(err, capture.ErrInterfaceGone) works on a *CaptureError.
type ErrorKind int

// Kinds of capture failure.
const (
	// ErrSystem is any other failed system call (a bug or an unusual kernel).
	ErrSystem ErrorKind = iota
	// ErrConfig: the RingConfig is invalid.
	ErrConfig
	// ErrInterfaceNotFound: no interface of that name in the current network namespace.
	ErrInterfaceNotFound
	// ErrInterfaceGone: the interface disappeared or went down; reopen all rings after a backoff.
	ErrInterfaceGone
	// ErrPermission: the process lacks CAP_NET_RAW.
	ErrPermission
	// ErrRingTooLarge: the kernel could not allocate the ring memory.
	ErrRingTooLarge
	// ErrFanoutBusy: another process uses the fanout group id.
	ErrFanoutBusy
	// ErrClosed: the ring was closed.
	ErrClosed
)

var kindNames = [...]string{"system", "config", "interface not found", "interface gone",
	"permission", "ring too large", "fanout group busy", "closed"}

// Error returns the kind's name.
func (k ErrorKind) Error() string {
	if int(k) < len(kindNames) {
		return "capture: " + kindNames[k]
	}
	return "capture: unknown error kind"
}

// Permanent reports whether a capture failure will not heal by waiting (missing
// privilege, an invalid configuration): the daemon stops with its message instead of
// retrying. An interface that is missing or went away, a busy fanout group, a ring the
// kernel could not allocate now may all heal, and are retried.
func Permanent(err error) bool {
	return errors.Is(err, ErrPermission) || errors.Is(err, ErrConfig)
}

// CaptureError is a capture failure with a one-line message that says what to do.
type CaptureError struct {
	Kind      ErrorKind
	Interface string
	Msg       string // the whole one-line message, starting with "capture: "
	Err       error  // the underlying errno, if any
}

// Error returns the one-line message.
func (e *CaptureError) Error() string { return e.Msg }

// Unwrap returns the underlying system error.
func (e *CaptureError) Unwrap() error { return e.Err }

// Is lets errors.Is match a kind: errors.Is(err, ErrInterfaceGone).
func (e *CaptureError) Is(target error) bool {
	k, ok := target.(ErrorKind)
	return ok && k == e.Kind
}

func newError(kind ErrorKind, iface string, err error, format string, args ...any) *CaptureError {
	return &CaptureError{Kind: kind, Interface: iface, Err: err, Msg: "capture: " + fmt.Sprintf(format, args...)}
}
