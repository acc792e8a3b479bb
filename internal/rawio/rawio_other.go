//go:build !linux || 386

package rawio

import (
	"net"
	"time"
)

// WrapPacketConn returns pc unchanged on this system.
func WrapPacketConn(pc net.PacketConn) net.PacketConn { return pc }

// WrapConn returns nc unchanged on this system.
func WrapConn(nc net.Conn) net.Conn { return nc }

// WrapListener returns ln unchanged on this system.
func WrapListener(ln net.Listener) net.Listener { return ln }

// EnableRxTimestamps reports false: receive timestamps are collected on Linux only.
func EnableRxTimestamps(nc net.Conn) bool { return false }

// RxTime returns the zero Time on this system.
func RxTime(nc net.Conn) time.Time { return time.Time{} }

// CanTryWrite reports false: TryWrite writes nothing on this system.
func CanTryWrite(nc net.Conn) bool { return false }

// TryWrite writes nothing on this system.
func TryWrite(nc net.Conn, b []byte) int { return 0 }
