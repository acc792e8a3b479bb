//go:build !linux

package gateway

import "net"

// readBufferSize cannot tell the receive buffer's size on this system.
func readBufferSize(*net.UDPConn) (int, bool) { return 0, false }
