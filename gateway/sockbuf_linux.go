//go:build linux

package gateway

import (
	"net"
	"syscall"
)

// readBufferSize is the receive buffer the kernel gave uc, in the bytes SetReadBuffer asks for (Linux reports
// twice that, the rest being its bookkeeping); false when it cannot be read.
func readBufferSize(uc *net.UDPConn) (int, bool) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return 0, false
	}
	var size int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		size, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
	}); err != nil || serr != nil {
		return 0, false
	}
	return size / 2, true
}
