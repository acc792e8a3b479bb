package rawio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"
)

// sameAddrPort compares two addresses, an IPv4-mapped IPv6 address as the IPv4 address it is.
func sameAddrPort(x, y netip.AddrPort) bool {
	return x.Addr().Unmap() == y.Addr().Unmap() && x.Port() == y.Port()
}

func listenUDP(t testing.TB) net.PacketConn {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return WrapPacketConn(pc)
}

func TestPacketConnRoundTrip(t *testing.T) {
	a, b := listenUDP(t), listenUDP(t)
	if _, plain := a.(*net.UDPConn); plain && isLinux {
		t.Fatal("WrapPacketConn returned the plain UDPConn")
	}
	for _, msg := range [][]byte{[]byte("MESSAGE sip:bob@127.0.0.1 SIP/2.0\r\n\r\n"), {}} {
		if n, err := a.WriteTo(msg, b.LocalAddr()); err != nil || n != len(msg) {
			t.Fatalf("WriteTo = %d, %v", n, err)
		}
		buf := make([]byte, 2048)
		n, from, err := b.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf[:n], msg) {
			t.Fatalf("read %q, want %q", buf[:n], msg)
		}
		if from.String() != a.LocalAddr().String() {
			t.Fatalf("from %s, want %s", from, a.LocalAddr())
		}
		ap, ok := from.(interface{ AddrPort() netip.AddrPort })
		if !ok || !sameAddrPort(ap.AddrPort(), a.LocalAddr().(*net.UDPAddr).AddrPort()) {
			t.Fatalf("from is %T %v, want the address of %s", from, from, a.LocalAddr())
		}
		// The sender's address takes an answer back.
		if _, err := b.WriteTo([]byte("answer"), from); err != nil {
			t.Fatalf("WriteTo the sender: %v", err)
		}
		if n, _, err := a.ReadFrom(buf); err != nil || string(buf[:n]) != "answer" {
			t.Fatalf("answer read as %q, %v", buf[:n], err)
		}
	}
}

// A UDP socket bound to all addresses is IPv6 (dual stack) in Go; IPv4 destinations must be reachable from
// it (the gateway's default SIP listeners may be such sockets).
func TestPacketConnDualStackToIPv4(t *testing.T) {
	pc, err := net.ListenPacket("udp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	a := WrapPacketConn(pc)
	b := listenUDP(t)
	if _, err := a.WriteTo([]byte("x"), b.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, _, err := b.ReadFrom(buf); err != nil || string(buf[:n]) != "x" {
		t.Fatalf("ReadFrom = %q, %v", buf[:n], err)
	}
}

func TestPacketConnDeadlineAndClose(t *testing.T) {
	pc := listenUDP(t)
	pc.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, _, err := pc.ReadFrom(make([]byte, 16))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("ReadFrom past the deadline = %v, want a timeout", err)
	}
	pc.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, _, err := pc.ReadFrom(make([]byte, 16))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	pc.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("ReadFrom on close = %v, want net.ErrClosed", err)
	}
}

func tcpPair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	wl := WrapListener(ln)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := wl.Accept()
		accepted <- c
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	client, server = WrapConn(nc), <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	if isLinux {
		for _, c := range []net.Conn{client, server} {
			if _, plain := c.(*net.TCPConn); plain {
				t.Fatal("connection not wrapped")
			}
		}
	}
	return client, server
}

// A write larger than both sockets' buffers must block until the reader drains them, then complete.
func TestConnLargeWrite(t *testing.T) {
	client, server := tcpPair(t)
	want := make([]byte, 32<<20)
	for i := range want {
		want[i] = byte(i * 7)
	}
	errc := make(chan error, 1)
	go func() {
		n, err := client.Write(want)
		if err == nil && n != len(want) {
			err = io.ErrShortWrite
		}
		client.Close()
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond) // let the writer fill the buffers and wait
	got, err := io.ReadAll(server)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("Write: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes that differ from the %d written", len(got), len(want))
	}
}

func TestConnDeadlinesAndPeerGone(t *testing.T) {
	client, server := tcpPair(t)
	server.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := server.Read(make([]byte, 16)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline = %v", err)
	}
	server.SetReadDeadline(time.Time{})
	if n, err := server.Read(nil); n != 0 || err != nil {
		t.Fatalf("empty Read = %d, %v", n, err)
	}
	client.Close()
	if _, err := server.Read(make([]byte, 16)); err != io.EOF {
		t.Fatalf("Read after the peer closed = %v, want io.EOF", err)
	}
	// Writing to a peer that has gone fails (EPIPE or ECONNRESET) and does not kill the process.
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = server.Write([]byte("SEND"))
		time.Sleep(time.Millisecond)
	}
	if err == nil {
		t.Fatal("writes to a closed peer kept succeeding")
	}
}

// With receive timestamps on, reads still return the stream intact (EOF included) and RxTime is the kernel's
// arrival time of the newest data read: after the peer started writing, before the read returned.
func TestConnRxTimestamps(t *testing.T) {
	client, server := tcpPair(t)
	if !EnableRxTimestamps(server) {
		if isLinux {
			t.Fatal("EnableRxTimestamps refused a wrapped TCP connection")
		}
		if !RxTime(server).IsZero() {
			t.Fatal("RxTime without timestamps is not zero")
		}
		return
	}
	if !RxTime(server).IsZero() {
		t.Fatal("RxTime before any read is not zero")
	}
	if EnableRxTimestamps(&net.TCPConn{}) {
		t.Fatal("EnableRxTimestamps took a connection it did not wrap")
	}
	// The kernel switches timestamping on a moment after it is first asked to (a deferred static key), so
	// data may come unstamped at first: send until some is stamped, then every later read must be.
	var last time.Time
	stamped := 0
	for i := 0; stamped < 3; i++ {
		if i == 200 {
			t.Fatal("no read carried a receive timestamp")
		}
		before := time.Now()
		msg := bytes.Repeat([]byte{byte('a' + i%26)}, 100+i)
		if _, err := client.Write(msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(server, got); err != nil {
			t.Fatal(err)
		}
		after := time.Now()
		if !bytes.Equal(got, msg) {
			t.Fatalf("read %q, want %q", got, msg)
		}
		rx := RxTime(server)
		if rx.IsZero() && stamped == 0 {
			time.Sleep(time.Millisecond)
			continue
		}
		if rx.Before(before) || rx.After(after) || !rx.After(last) {
			t.Fatalf("message %d: RxTime %v, want within [%v, %v] and after %v", i, rx, before, after, last)
		}
		last = rx
		stamped++
		time.Sleep(2 * time.Millisecond)
	}
	client.Close()
	if n, err := server.Read(make([]byte, 16)); n != 0 || err != io.EOF {
		t.Fatalf("Read after the peer closed = %d, %v, want io.EOF", n, err)
	}
}

// BenchmarkPacketConn is one datagram out and in over loopback, of a SIP MESSAGE's size, with the net
// package's calls and with this package's.
func BenchmarkPacketConn(b *testing.B) {
	for _, wrap := range []bool{false, true} {
		b.Run(map[bool]string{false: "net", true: "rawio"}[wrap], func(b *testing.B) {
			open := func() net.PacketConn {
				pc, err := net.ListenPacket("udp", "127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { pc.Close() })
				if wrap {
					return WrapPacketConn(pc)
				}
				return pc
			}
			a, c := open(), open()
			msg, buf, dst := make([]byte, 600), make([]byte, 2048), c.LocalAddr()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.WriteTo(msg, dst); err != nil {
					b.Fatal(err)
				}
				if _, _, err := c.ReadFrom(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkConn is one write of an MSRP SEND's size and its read over a loopback TCP connection.
func BenchmarkConn(b *testing.B) {
	client, server := tcpPair(b)
	msg, buf := make([]byte, 400), make([]byte, 400)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := client.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(server, buf); err != nil {
			b.Fatal(err)
		}
	}
}
