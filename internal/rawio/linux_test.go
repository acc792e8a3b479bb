//go:build linux && !386

package rawio

import (
	"net"
	"syscall"
	"testing"
)

const isLinux = true

// The socket address written for sendto(2) reads back as the same address.
func TestSockaddrRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		addr string
		size uintptr
	}{
		{"127.0.0.2:5060", syscall.SizeofSockaddrInet4},
		{"[::ffff:127.0.0.2]:5060", syscall.SizeofSockaddrInet4}, // IPv4-mapped: sent as IPv4
		{"[2001:db8::1]:65535", syscall.SizeofSockaddrInet6},
	} {
		ua, err := net.ResolveUDPAddr("udp", tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		var rsa syscall.RawSockaddrAny
		if n := sockaddr(ua, &rsa); n != tc.size {
			t.Errorf("%s: length %d, want %d", tc.addr, n, tc.size)
		}
		if got := udpAddr(&rsa); got == nil || !got.IP.Equal(ua.IP) || got.Port != ua.Port {
			t.Errorf("%s: read back as %v", tc.addr, got)
		}
	}
}
