//go:build linux

package rawio

import (
	"net"
	"syscall"
	"testing"
)

const isLinux = true

// The socket address written for sendto(2) reads back as the same address, per socket family.
func TestSockaddrRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		family int
		addr   string
		size   uintptr
	}{
		{syscall.AF_INET, "127.0.0.2:5060", syscall.SizeofSockaddrInet4},
		{syscall.AF_INET6, "127.0.0.2:5060", syscall.SizeofSockaddrInet6}, // mapped
		{syscall.AF_INET6, "[2001:db8::1]:65535", syscall.SizeofSockaddrInet6},
	} {
		ua, err := net.ResolveUDPAddr("udp", tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		var rsa syscall.RawSockaddrAny
		if n := sockaddr(tc.family, ua, &rsa); n != tc.size {
			t.Errorf("%d %s: length %d, want %d", tc.family, tc.addr, n, tc.size)
		}
		if got := udpAddr(&rsa); got == nil || !got.IP.Equal(ua.IP) || got.Port != ua.Port {
			t.Errorf("%d %s: read back as %v", tc.family, tc.addr, got)
		}
	}
}
