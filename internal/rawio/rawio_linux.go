//go:build linux && !386

package rawio

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// WrapPacketConn returns a *net.UDPConn with raw ReadFrom (the sender as an *Addr) and WriteTo; any other conn
// is returned as it is.
// All other methods are the UDPConn's own.
func WrapPacketConn(pc net.PacketConn) net.PacketConn {
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		return pc
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return pc
	}
	return &packetConn{UDPConn: uc, rc: rc}
}

// Addr is the sender of a datagram as a wrapped packet conn's ReadFrom returns it: a net.UDPAddr whose text
// is made once. A socket hears mostly from the same few peers (a proxy in front of the gateway, a phone
// sending many messages), and a net.UDPAddr is allocated on every read and formatted again on every String
// (sipgo calls it for every datagram): ReadFrom returns the same *Addr while the sender stays the same, so
// it must not be modified. WriteTo takes it back as a destination.
type Addr struct {
	net.UDPAddr
	text string
	key  senderKey
}

// String is the address as net.UDPAddr.String writes it.
func (a *Addr) String() string { return a.text }

// WrapConn returns a *net.TCPConn with raw Read and Write; any other conn is returned as it is. All other
// methods are the TCPConn's own.
func WrapConn(nc net.Conn) net.Conn {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nc
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nc
	}
	return &conn{TCPConn: tc, rc: rc}
}

// WrapListener returns ln whose Accept wraps each connection with WrapConn.
func WrapListener(ln net.Listener) net.Listener { return listener{ln} }

type listener struct{ net.Listener }

func (l listener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return WrapConn(nc), nil
}

// op is one system call's buffer, address and results. Ops are pooled and their callbacks are method values
// made once, so a read or write allocates nothing of its own.
type op struct {
	b     []byte
	rsa   syscall.RawSockaddrAny // recvfrom's source, sendto's destination
	alen  uint32                 // recvfrom's address length
	sl    uintptr                // sendto's address length
	n     int
	errno syscall.Errno

	// recvmsg's header, buffer vector and control buffer (receive timestamps)
	msg syscall.Msghdr
	iov syscall.Iovec
	oob [64]byte

	recvfrom, sendto, read, write, writeOnce, recvmsg func(fd uintptr) bool
}

var ops = sync.Pool{New: func() any {
	o := new(op)
	o.recvfrom, o.sendto, o.read, o.write, o.recvmsg = o.doRecvfrom, o.doSendto, o.doRead, o.doWrite, o.doRecvmsg
	o.writeOnce = o.doWriteOnce
	return o
}}

func getOp(b []byte) *op {
	o := ops.Get().(*op)
	o.b, o.n, o.errno = b, 0, 0
	return o
}

func (o *op) put() {
	o.b, o.iov.Base = nil, nil // the pool must not keep the caller's buffer alive
	ops.Put(o)
}

// The do methods are syscall.RawConn callbacks: each makes its call until it is not interrupted, and
// returns false when the socket is not ready (EAGAIN), so that RawConn waits for it and calls again.

func (o *op) doRecvfrom(fd uintptr) bool {
	for {
		o.alen = syscall.SizeofSockaddrAny
		r, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, bufPtr(o.b), uintptr(len(o.b)), 0,
			uintptr(unsafe.Pointer(&o.rsa)), uintptr(unsafe.Pointer(&o.alen)))
		if e != syscall.EINTR {
			o.n, o.errno = int(r), e
			return e != syscall.EAGAIN
		}
	}
}

func (o *op) doSendto(fd uintptr) bool {
	for {
		r, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, bufPtr(o.b), uintptr(len(o.b)), 0,
			uintptr(unsafe.Pointer(&o.rsa)), o.sl)
		if e != syscall.EINTR {
			o.n, o.errno = int(r), e
			return e != syscall.EAGAIN
		}
	}
}

func (o *op) doRead(fd uintptr) bool {
	for {
		r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, bufPtr(o.b), uintptr(len(o.b)))
		if e != syscall.EINTR {
			o.n, o.errno = int(r), e
			return e != syscall.EAGAIN
		}
	}
}

// doRecvmsg reads like doRead, with the control messages (the receive timestamp) in o.oob; o.msg's
// Controllen says how much of it the kernel filled.
func (o *op) doRecvmsg(fd uintptr) bool {
	for {
		o.iov.Base = nil
		if len(o.b) > 0 {
			o.iov.Base = &o.b[0]
		}
		o.iov.SetLen(len(o.b))
		o.msg = syscall.Msghdr{Iov: &o.iov}
		o.msg.Iovlen = 1
		o.msg.Control = &o.oob[0]
		o.msg.SetControllen(len(o.oob))
		r, _, e := syscall.RawSyscall(syscall.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&o.msg)), 0)
		if e != syscall.EINTR {
			o.n, o.errno = int(r), e
			return e != syscall.EAGAIN
		}
	}
}

// rxTimestamp returns the SCM_TIMESTAMPNS control message of the last recvmsg, in nanoseconds since the
// Unix epoch, or 0 when there is none.
func (o *op) rxTimestamp() int64 {
	oob := o.oob[:min(int(o.msg.Controllen), len(o.oob))]
	for len(oob) >= syscall.SizeofCmsghdr {
		h := (*syscall.Cmsghdr)(unsafe.Pointer(&oob[0]))
		if h.Len < syscall.SizeofCmsghdr || int(h.Len) > len(oob) {
			return 0
		}
		if h.Level == syscall.SOL_SOCKET && h.Type == syscall.SCM_TIMESTAMPNS &&
			int(h.Len) >= syscall.CmsgLen(int(unsafe.Sizeof(syscall.Timespec{}))) {
			ts := (*syscall.Timespec)(unsafe.Pointer(&oob[syscall.CmsgLen(0)]))
			return ts.Nano()
		}
		oob = oob[min(syscall.CmsgSpace(int(h.Len)-syscall.CmsgLen(0)), len(oob)):]
	}
	return 0
}

// doWrite writes all of o.b, o.n counting what went out, unless an error stops it.
func (o *op) doWrite(fd uintptr) bool {
	e := o.writeSome(fd)
	if e == syscall.EAGAIN {
		return false // the socket buffer is full: wait until it drains
	}
	o.errno = e
	return true
}

// doWriteOnce writes what the socket takes of o.b at once, and never asks RawConn to wait: what is left
// after EAGAIN (the socket buffer is full) or an error is for a blocking Write.
func (o *op) doWriteOnce(fd uintptr) bool {
	o.errno = o.writeSome(fd)
	return true
}

// writeSome writes o.b from o.n on, retrying interrupted calls, until all of it went out (0) or a call
// failed (its errno, EAGAIN included).
func (o *op) writeSome(fd uintptr) syscall.Errno {
	for o.n < len(o.b) {
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, bufPtr(o.b[o.n:]), uintptr(len(o.b)-o.n))
		switch e {
		case 0:
			o.n += int(r)
		case syscall.EINTR:
		default:
			return e
		}
	}
	return 0
}

// opError builds what the net package would return: an *net.OpError around the errno or the poller's
// error (deadline exceeded, closed).
func opError(op, network string, source, addr net.Addr, err error, errno syscall.Errno) error {
	if err == nil && errno != 0 {
		err = errno
	}
	if err == nil {
		return nil
	}
	return &net.OpError{Op: op, Net: network, Source: source, Addr: addr, Err: err}
}

// bufPtr is the address of b's first byte, or 0 for an empty b.
func bufPtr(b []byte) uintptr {
	if len(b) == 0 {
		return 0
	}
	return uintptr(unsafe.Pointer(&b[0]))
}

type packetConn struct {
	*net.UDPConn
	rc   syscall.RawConn
	last atomic.Pointer[Addr] // the latest datagram's sender
}

// ReadFrom implements net.PacketConn with recvfrom(2).
func (c *packetConn) ReadFrom(b []byte) (int, net.Addr, error) {
	o := getOp(b)
	defer o.put()
	if err := opError("read", "udp", c.LocalAddr(), nil, c.rc.Read(o.recvfrom), o.errno); err != nil {
		return 0, nil, err
	}
	return o.n, c.sender(&o.rsa), nil
}

// sender is the *Addr for the address recvfrom(2) filled in: the latest one again when it is the same.
func (c *packetConn) sender(rsa *syscall.RawSockaddrAny) net.Addr {
	k, ok := senderKeyOf(rsa)
	if !ok {
		return udpAddr(rsa) // a typed nil, as before: its String is "<nil>", where a nil net.Addr would panic
	}
	if a := c.last.Load(); a != nil && a.key == k {
		return a
	}
	ua := udpAddr(rsa)
	a := &Addr{UDPAddr: *ua, text: ua.String(), key: k}
	c.last.Store(a)
	return a
}

// senderKey is a sender's address as recvfrom(2) gives it, comparable.
type senderKey struct {
	family uint16
	port   uint16 // network byte order, as it came
	addr   [16]byte
	scope  uint32
}

func senderKeyOf(rsa *syscall.RawSockaddrAny) (senderKey, bool) {
	switch rsa.Addr.Family {
	case syscall.AF_INET:
		sa := (*syscall.RawSockaddrInet4)(unsafe.Pointer(rsa))
		k := senderKey{family: syscall.AF_INET, port: sa.Port}
		copy(k.addr[:], sa.Addr[:])
		return k, true
	case syscall.AF_INET6:
		sa := (*syscall.RawSockaddrInet6)(unsafe.Pointer(rsa))
		return senderKey{family: syscall.AF_INET6, port: sa.Port, addr: sa.Addr, scope: sa.Scope_id}, true
	}
	return senderKey{}, false
}

// WriteTo implements net.PacketConn with sendto(2).
func (c *packetConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	var ua *net.UDPAddr
	switch a := addr.(type) {
	case *net.UDPAddr:
		ua = a
	case *Addr:
		if a != nil {
			ua = &a.UDPAddr
		}
	}
	if ua == nil {
		return c.UDPConn.WriteTo(b, addr)
	}
	o := getOp(b)
	defer o.put()
	o.sl = sockaddr(ua, &o.rsa)
	if err := opError("write", "udp", c.LocalAddr(), addr, c.rc.Write(o.sendto), o.errno); err != nil {
		return 0, err
	}
	return o.n, nil
}

// sockaddr fills rsa with ua's address as sendto(2) takes it, and returns its length. An IPv4 address goes
// as AF_INET on any socket: Linux sends it from a dual-stack IPv6 socket too.
func sockaddr(ua *net.UDPAddr, rsa *syscall.RawSockaddrAny) uintptr {
	ap := ua.AddrPort()
	if ip := ap.Addr(); ip.Is4() || ip.Is4In6() {
		sa := (*syscall.RawSockaddrInet4)(unsafe.Pointer(rsa))
		sa.Family, sa.Addr = syscall.AF_INET, ip.Unmap().As4()
		putPort(&sa.Port, ap.Port())
		return syscall.SizeofSockaddrInet4
	}
	sa := (*syscall.RawSockaddrInet6)(unsafe.Pointer(rsa))
	sa.Family, sa.Addr = syscall.AF_INET6, ap.Addr().As16()
	putPort(&sa.Port, ap.Port())
	if z := ua.Zone; z != "" {
		if ifi, err := net.InterfaceByName(z); err == nil {
			sa.Scope_id = uint32(ifi.Index)
		}
	}
	return syscall.SizeofSockaddrInet6
}

// putPort stores a port in network byte order.
func putPort(dst *uint16, port uint16) {
	p := (*[2]byte)(unsafe.Pointer(dst))
	p[0], p[1] = byte(port>>8), byte(port)
}

// udpAddr converts the address recvfrom(2) filled in.
func udpAddr(rsa *syscall.RawSockaddrAny) *net.UDPAddr {
	switch rsa.Addr.Family {
	case syscall.AF_INET:
		sa := (*syscall.RawSockaddrInet4)(unsafe.Pointer(rsa))
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		return &net.UDPAddr{IP: net.IPv4(sa.Addr[0], sa.Addr[1], sa.Addr[2], sa.Addr[3]), Port: int(p[0])<<8 | int(p[1])}
	case syscall.AF_INET6:
		sa := (*syscall.RawSockaddrInet6)(unsafe.Pointer(rsa))
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		a := &net.UDPAddr{IP: make(net.IP, net.IPv6len), Port: int(p[0])<<8 | int(p[1])}
		copy(a.IP, sa.Addr[:])
		if sa.Scope_id != 0 {
			if ifi, err := net.InterfaceByIndex(int(sa.Scope_id)); err == nil {
				a.Zone = ifi.Name
			}
		}
		return a
	}
	return nil
}

type conn struct {
	*net.TCPConn
	rc   syscall.RawConn
	rx   bool         // receive timestamps on: Read uses recvmsg (set before the first Read)
	rxNs atomic.Int64 // the newest receive timestamp, ns since the Unix epoch
}

// EnableRxTimestamps makes the kernel timestamp what arrives on nc, a connection from WrapConn or
// WrapListener, and nc's reads use recvmsg(2) to collect the timestamps for RxTime. Call it before the first
// Read. It reports false, and changes nothing, for any other connection or when the socket refuses.
func EnableRxTimestamps(nc net.Conn) bool {
	c, ok := nc.(*conn)
	if !ok {
		return false
	}
	var serr error
	if err := c.rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	}); err != nil || serr != nil {
		return false
	}
	c.rx = true
	return true
}

// RxTime is when the kernel received the newest data nc's last read returned (SO_TIMESTAMPNS); the zero Time
// when that is unknown: before the first read, when EnableRxTimestamps was not called on nc, or for data that
// came before the kernel started stamping (it turns timestamping on shortly after the first request).
func RxTime(nc net.Conn) time.Time {
	if c, ok := nc.(*conn); ok {
		if ns := c.rxNs.Load(); ns != 0 {
			return time.Unix(0, ns)
		}
	}
	return time.Time{}
}

// Read implements net.Conn with read(2), or recvmsg(2) with receive timestamps on.
func (c *conn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	o := getOp(b)
	defer o.put()
	call := o.read
	if c.rx {
		call = o.recvmsg
	}
	if err := opError("read", "tcp", c.LocalAddr(), c.RemoteAddr(), c.rc.Read(call), o.errno); err != nil {
		return 0, err
	}
	if c.rx && o.n > 0 {
		c.rxNs.Store(o.rxTimestamp()) // 0 (unknown) when the kernel did not stamp this data
	}
	if o.n == 0 {
		return 0, io.EOF
	}
	return o.n, nil
}

// CanTryWrite reports whether TryWrite works on nc: a connection from WrapConn or WrapListener.
func CanTryWrite(nc net.Conn) bool {
	_, ok := nc.(*conn)
	return ok
}

// TryWrite writes what of b the socket takes without waiting, and returns how much that was: less than
// len(b) when its send buffer is full, or when the write failed (a blocking Write of the rest then waits, or
// reports the error). It writes nothing on a connection CanTryWrite refuses.
func TryWrite(nc net.Conn, b []byte) int {
	c, ok := nc.(*conn)
	if !ok || len(b) == 0 {
		return 0
	}
	o := getOp(b)
	defer o.put()
	if c.rc.Write(o.writeOnce) != nil { // closed, or past a deadline
		return 0
	}
	return o.n
}

// Write implements net.Conn with write(2), writing all of b unless an error or deadline stops it.
func (c *conn) Write(b []byte) (int, error) {
	o := getOp(b)
	defer o.put()
	err := opError("write", "tcp", c.LocalAddr(), c.RemoteAddr(), c.rc.Write(o.write), o.errno)
	return o.n, err
}
