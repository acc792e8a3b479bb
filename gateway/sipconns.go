package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/msrpgw/msrpgw/event"
)

// sipConns bounds the SIP TCP and TLS connections the gateway accepts (SPEC §8: connections in total and per
// source address; limits.max_sip_conns, limits.max_sip_conns_per_source), over all its SIP listeners. Without
// it, anyone able to connect could hold connections, each with sipgo's read buffer, until the process ran out
// of files, MSRP's included. A connection over a bound is closed as soon as it is accepted; the connections
// the gateway opens itself are not counted.
//
// It also closes an accepted connection idle for limits.sip_conn_idle_timeout: without that, a client could
// hold its places for ever by sending nothing. Likewise a write to it that does not complete within that time
// closes it: a client that sends and never reads would otherwise hold the goroutines writing to it for ever.
// sipgo's own TransportTCP.ReadTimeout is not used: setting it
// means replacing sipgo's TCP and TLS transports, whose logger cannot then be ours; it times reads only, so a
// connection the gateway is writing a request on counts as idle; and its expiry is logged as an error
// without the peer's address.
type sipConns struct {
	max, perSource int
	idle           time.Duration // limits.sip_conn_idle_timeout; 0: not timed
	g              *Gateway

	mu       sync.Mutex
	total    int
	bySource map[netip.Addr]int

	lastLog atomic.Int64 // unix nanos of the last "refused" line: at most one a second in a flood
}

func newSIPConns(g *Gateway, max, perSource int, idle time.Duration) *sipConns {
	return &sipConns{max: max, perSource: perSource, idle: idle, g: g, bySource: make(map[netip.Addr]int)}
}

// listener wraps a SIP TCP listener (under TLS, the TCP one: a connection counts from its first byte).
func (c *sipConns) listener(ln net.Listener) net.Listener {
	return &boundedListener{Listener: ln, c: c}
}

// admit counts a connection from src, or says which bound refuses it.
func (c *sipConns) admit(src netip.Addr) (why string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch { // 0: no bound (a config that did not go through validation)
	case c.max > 0 && c.total >= c.max:
		return "limits.max_sip_conns"
	case c.perSource > 0 && c.bySource[src] >= c.perSource:
		return "limits.max_sip_conns_per_source"
	}
	c.total++
	c.bySource[src]++
	return ""
}

func (c *sipConns) release(src netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total--
	if n := c.bySource[src] - 1; n > 0 {
		c.bySource[src] = n
	} else {
		delete(c.bySource, src)
	}
}

func (c *sipConns) refused(src net.Addr, why string) {
	c.g.publish(event.Event{Kind: event.RequestRefused, Reason: "sip: connection over " + why})
	now := time.Now().UnixNano()
	if last := c.lastLog.Load(); now-last < int64(time.Second) || !c.lastLog.CompareAndSwap(last, now) {
		return
	}
	c.g.log.Warn("SIP connection refused", "source", src.String(), "why", why+" reached",
		"note", "at most one such line a second")
}

type boundedListener struct {
	net.Listener
	c *sipConns
}

// Accept returns the next connection within the bounds; those over them are closed here. An accept that fails
// for a passing reason (acceptRetryable) is tried again after a pause, as the MSRP listener does: sipgo's accept
// loop ends on any error, and the listener would stay shut for the rest of the process's life.
func (l *boundedListener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			if !acceptRetryable(err) {
				return nil, err
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			l.c.g.log.Warn("SIP accept failed, retrying", "addr", l.Addr().String(), "err", err, "after", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		src := sourceAddr(nc.RemoteAddr())
		if why := l.c.admit(src); why != "" {
			nc.Close()
			l.c.refused(nc.RemoteAddr(), why)
			continue
		}
		bc := &boundedConn{Conn: nc, release: func() { l.c.release(src) }, idle: l.c.idle, log: l.c.g.log}
		bc.touch()
		return bc, nil
	}
}

// acceptRetryable reports whether Accept failed for a passing reason: a timeout, or the process or system out of
// descriptors or memory for a moment (a flood of connections). A closed listener is no such reason.
func acceptRetryable(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

// sourceAddr is the IP address a connection comes from (IPv4 in IPv6 unmapped); the zero Addr when unknown,
// which then counts as one source.
func sourceAddr(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ta.IP); ok {
			return ip.Unmap()
		}
	}
	return netip.Addr{}
}

// boundedConn gives its place back when it is closed, once, and closes itself when idle, or when a write to it
// does not complete within idle: a peer that sends and never reads would otherwise hold every goroutine
// writing to it for as long as it kept sending, each sipgo handler with its limits.max_sip_handlers slot.
type boundedConn struct {
	net.Conn
	once    sync.Once
	release func()

	idle    time.Duration // 0: never idle
	log     *slog.Logger
	last    atomic.Int64 // unix nanos of the last byte read or written
	writers atomic.Int32 // writes under way, the one in the socket and those waiting for it
	stuck   sync.Once    // a write passed its deadline: logged and closed once
}

func (c *boundedConn) touch() { c.last.Store(time.Now().UnixNano()) }

// Read is the connection's read, under a deadline idle after the last traffic either way. sipgo reads each
// connection in a loop of its own, so the deadline is always set while nothing else is read: a connection
// nobody writes to either passes it and is closed here. A write since the deadline was set moves it on.
func (c *boundedConn) Read(b []byte) (int, error) {
	for {
		if c.idle > 0 {
			c.Conn.SetReadDeadline(time.Unix(0, c.last.Load()).Add(c.idle))
		}
		n, err := c.Conn.Read(b)
		if n > 0 {
			c.touch()
		}
		var ne net.Error
		if c.idle <= 0 || err == nil || !errors.As(err, &ne) || !ne.Timeout() {
			return n, err
		}
		if n > 0 {
			return n, nil // the next read waits again
		}
		if quiet := time.Since(time.Unix(0, c.last.Load())); quiet < c.idle {
			continue // written to meanwhile
		}
		c.log.Info("SIP connection closed: idle", "remote", c.RemoteAddr().String(), "idle", c.idle)
		// sipgo's reader ends on this and closes the connection; net.ErrClosed makes it take that for a
		// connection that ended, not for a read error to log.
		return 0, fmt.Errorf("idle for %v: %w", c.idle, net.ErrClosed)
	}
}

// Write is the connection's write, under a deadline idle after the last write that completed, or after this
// one began when none was under way: writes waiting for one the peer does not take do not move it on. A write
// that passes it closes the connection.
func (c *boundedConn) Write(b []byte) (int, error) {
	if c.idle > 0 && c.writers.Add(1) == 1 {
		c.Conn.SetWriteDeadline(time.Now().Add(c.idle))
	}
	n, err := c.Conn.Write(b)
	if n > 0 {
		c.touch()
	}
	if c.idle <= 0 {
		return n, err
	}
	if c.writers.Add(-1) > 0 && err == nil {
		c.Conn.SetWriteDeadline(time.Now().Add(c.idle)) // the next write waiting gets its own time
	}
	var ne net.Error
	if err != nil && errors.As(err, &ne) && ne.Timeout() {
		c.stuck.Do(func() {
			c.log.Info("SIP connection closed: peer does not read", "remote", c.RemoteAddr().String(), "waited", c.idle)
			c.Close()
		})
	}
	return n, err
}

func (c *boundedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// wholeReadsListener hands sipgo connections whose reads never hold only NUL bytes (wholeReadsConn).
type wholeReadsListener struct{ net.Listener }

func (l wholeReadsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return wholeReadsConn{c}, nil
}

// wholeReadsConn is a SIP stream connection whose reads that hold only NUL bytes are returned with what
// follows them: sipgo's reader drops such a read whole (it takes it for padding), which inside a body would
// lose those bytes and cut the stream, the next message with them.
type wholeReadsConn struct{ net.Conn }

func (c wholeReadsConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	for err == nil && n > 0 && n < len(b) && allNUL(b[:n]) {
		var m int
		m, err = c.Conn.Read(b[n:])
		n += m
	}
	return n, err
}

func allNUL(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
