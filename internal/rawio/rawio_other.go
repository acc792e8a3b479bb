//go:build !linux

package rawio

import "net"

// WrapPacketConn returns pc unchanged on this system.
func WrapPacketConn(pc net.PacketConn) net.PacketConn { return pc }

// WrapConn returns nc unchanged on this system.
func WrapConn(nc net.Conn) net.Conn { return nc }

// WrapListener returns ln unchanged on this system.
func WrapListener(ln net.Listener) net.Listener { return ln }
