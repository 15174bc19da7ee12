package capture

import (
	"errors"

	"golang.org/x/sys/unix"
)

// sysError wraps a failed system call of the setup sequence, classifying the errnos that
// have a fix the user can apply.
func sysError(iface, op string, err error) *CaptureError {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return newError(ErrPermission, iface, err, "opening an AF_PACKET socket needs CAP_NET_RAW: "+
			"run as root, or grant it once with: sudo setcap cap_net_raw,cap_net_admin+ep $(command -v telescope)")
	case errors.Is(err, unix.ENODEV), errors.Is(err, unix.ENXIO):
		return newError(ErrInterfaceNotFound, iface, err, "interface %q not found (ip link shows the available ones)", iface)
	case errors.Is(err, unix.ENETDOWN):
		return newError(ErrInterfaceGone, iface, err, "interface %q is down (bring it up with: ip link set %s up)", iface, iface)
	}
	return newError(ErrSystem, iface, err, "%s on interface %q: %v", op, iface, err)
}

// goneError reports that a bound interface disappeared or went down while capturing.
func goneError(iface string, err error) *CaptureError {
	return newError(ErrInterfaceGone, iface, err,
		"interface %q went away or down (%v); reopen the capture once it is back", iface, err)
}

// isGone reports whether an errno means the bound interface left.
func isGone(err error) bool {
	return errors.Is(err, unix.ENETDOWN) || errors.Is(err, unix.ENXIO) || errors.Is(err, unix.ENODEV)
}
