//go:build linux && !386

package rawio

import (
	"bytes"
	"io"
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

// ReadFrom gives the same *Addr for datagrams from the same sender, and a new one when the sender changes;
// its text is what net.UDPAddr writes.
func TestReadFromReusesSenderAddr(t *testing.T) {
	a, b, c := listenUDP(t), listenUDP(t), listenUDP(t)
	buf := make([]byte, 16)
	read := func() *Addr {
		t.Helper()
		_, from, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		ra, ok := from.(*Addr)
		if !ok {
			t.Fatalf("from is a %T, want *Addr", from)
		}
		return ra
	}
	msg, to := []byte("x"), c.LocalAddr()
	send := func(pc net.PacketConn) {
		t.Helper()
		if _, err := pc.WriteTo(msg, to); err != nil {
			t.Fatal(err)
		}
	}
	send(a)
	first := read()
	send(a)
	if again := read(); again != first {
		t.Errorf("second datagram from %s got a new address", first)
	}
	send(b)
	other := read()
	if other == first || other.String() != b.LocalAddr().String() || !sameAddrPort(other.AddrPort(), b.LocalAddr().(*net.UDPAddr).AddrPort()) {
		t.Errorf("datagram from %s read as from %s (first %s)", b.LocalAddr(), other, first)
	}
	if first.String() != a.LocalAddr().String() {
		t.Errorf("first sender %s, want %s", first, a.LocalAddr())
	}
}

// TryWrite writes what the socket takes and returns at once when it takes no more; a blocking Write of the
// rest then completes the stream, intact.
func TestTryWrite(t *testing.T) {
	client, server := tcpPair(t)
	if !CanTryWrite(client) {
		t.Fatal("CanTryWrite refuses a wrapped connection")
	}
	want := make([]byte, 32<<20) // beyond any loopback socket buffers
	for i := range want {
		want[i] = byte(i * 7)
	}
	n := TryWrite(client, want)
	if n <= 0 || n >= len(want) {
		t.Fatalf("TryWrite of %d bytes to a peer that does not read wrote %d", len(want), n)
	}
	if m := TryWrite(client, want[n:]); m != 0 {
		t.Fatalf("TryWrite to a full socket wrote %d bytes", m)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := client.Write(want[n:])
		client.Close()
		errc <- err
	}()
	got, err := io.ReadAll(server)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("Write of the rest: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes that differ from the %d written", len(got), len(want))
	}
	if m := TryWrite(client, want); m != 0 {
		t.Fatalf("TryWrite on a closed connection wrote %d bytes", m)
	}

	plain, other := net.Pipe()
	defer plain.Close()
	defer other.Close()
	if CanTryWrite(plain) || TryWrite(plain, want) != 0 {
		t.Fatal("TryWrite works on a connection WrapConn did not wrap")
	}
}
