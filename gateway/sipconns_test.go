package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/internal/testpeer"
)

// dialFrom opens a TCP connection to addr from host (127.x.y.z stands in for other hosts).
func dialFrom(t *testing.T, host, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(host)}, Timeout: waitFor}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedByPeer reports whether the gateway closed c within d, rather than keeping it open. A test that wants
// c closed gives waitFor (a bound on what must happen); one that wants it kept open, a second (the gateway
// closes a connection over a bound at once).
func closedByPeer(t *testing.T, c net.Conn, d time.Duration) bool {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	if err == nil {
		t.Fatal("the gateway sent something unasked")
	}
	return true
}

// options sends an OPTIONS on c and returns the status line of the answer.
func options(t *testing.T, c net.Conn, gw string) string {
	t.Helper()
	line, err := tryOptions(c, gw)
	if err != nil {
		t.Fatalf("OPTIONS over %s: %v", c.LocalAddr(), err)
	}
	return line
}

// tryOptions is options that returns the error.
func tryOptions(c net.Conn, gw string) (string, error) {
	local := c.LocalAddr().String()
	fmt.Fprintf(c, "OPTIONS sip:%s SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=z9hG4bK-%d\r\nMax-Forwards: 70\r\n"+
		"From: <sip:probe@%s>;tag=p\r\nTo: <sip:%s>\r\nCall-ID: conns-%s\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
		gw, local, time.Now().UnixNano(), local, gw, local)
	c.SetReadDeadline(time.Now().Add(waitFor))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// limits.max_sip_conns and max_sip_conns_per_source bound the SIP TCP connections the gateway accepts: one
// over a bound is closed at once and counted, those within keep working, and a place given back is taken
// again.
func TestSIPConnectionBounds(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Limits.MaxSIPConns = 3
		c.Limits.MaxSIPConnsPerSource = 2
	})
	gw := h.gw.SIPAddr("tcp")
	a1, a2 := dialFrom(t, "127.0.0.2", gw), dialFrom(t, "127.0.0.2", gw)
	if got := options(t, a2, gw); !strings.HasPrefix(got, "SIP/2.0 200") {
		t.Fatalf("OPTIONS within the bounds: %q", got)
	}
	if a3 := dialFrom(t, "127.0.0.2", gw); !closedByPeer(t, a3, waitFor) {
		t.Fatal("a third connection from 127.0.0.2 stayed open (max_sip_conns_per_source 2)")
	}
	if e := h.events.waitKind(t, event.RequestRefused); !strings.Contains(e.Reason, "max_sip_conns_per_source") {
		t.Fatalf("refusal counted as %q", e.Reason)
	}
	b1 := dialFrom(t, "127.0.0.3", gw)
	if closedByPeer(t, b1, time.Second) {
		t.Fatal("the third connection in all was closed (max_sip_conns 3)")
	}
	if c1 := dialFrom(t, "127.0.0.4", gw); !closedByPeer(t, c1, waitFor) {
		t.Fatal("a fourth connection in all stayed open (max_sip_conns 3)")
	}
	if got := options(t, a1, gw); !strings.HasPrefix(got, "SIP/2.0 200") {
		t.Fatalf("OPTIONS on a connection within the bounds, after refusals: %q", got)
	}
	// A connection closed gives its place back, once the gateway has seen it go.
	b1.Close()
	deadline := time.Now().Add(waitFor)
	for {
		c := dialFrom(t, "127.0.0.4", gw)
		if !closedByPeer(t, c, time.Second) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the place of a closed connection was not given back")
		}
	}
}

// limits.sip_conn_idle_timeout: an accepted SIP connection with no traffic either way for that long is closed
// and gives its place back, whether nothing ever came on it or it stopped after a request; traffic keeps it.
func TestSIPConnectionIdleClosed(t *testing.T) {
	const idle = 400 * time.Millisecond
	h := newHarness(t, func(c *config.Config) {
		c.Limits.SIPConnIdleTimeout = idle
		c.Limits.MaxSIPConnsPerSource = 1
	})
	gw := h.gw.SIPAddr("tcp")

	silent := dialFrom(t, "127.0.0.1", gw)
	start := time.Now()
	silent.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := silent.Read(make([]byte, 1)); err == nil {
		t.Fatal("the gateway sent something unasked")
	} else if took := time.Since(start); took < idle/2 {
		t.Fatalf("closed after %v, before the idle timeout %v: %v", took, idle, err)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("a connection that sent nothing was still open after %v (idle timeout %v)", waitFor, idle)
	}

	// Its place is given back (max_sip_conns_per_source 1), once the gateway has seen it go: a new connection
	// is served, and kept open while there is traffic on it, for longer than the idle timeout in all.
	var c net.Conn
	var since time.Time // when c was opened
	for deadline := time.Now().Add(waitFor); ; {
		since = time.Now()
		c = dialFrom(t, "127.0.0.1", gw)
		c.SetReadDeadline(time.Now().Add(idle / 4))
		_, err := c.Read(make([]byte, 1))
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			break // not refused
		}
		if time.Now().After(deadline) {
			t.Fatal("the place of a connection closed for being idle was not given back")
		}
	}
	// The longest the gateway can have seen c without traffic is from the start of one OPTIONS (since c was
	// opened, for the first) to the answer to the next: a connection closed while that stayed below the idle
	// timeout is the failure; one closed after a run held the OPTIONS up longer proves nothing either way.
	for i := 0; i < 4; i++ {
		start := time.Now()
		got, err := tryOptions(c, gw)
		if gap := time.Since(since); err != nil && gap >= idle {
			t.Skipf("the run held the OPTIONS up for %v, past the idle timeout %v: nothing to check (%v)", gap, idle, err)
		} else if err != nil {
			t.Fatalf("OPTIONS %d on a connection busy at most %v apart (idle timeout %v): %v", i, gap, idle, err)
		}
		if !strings.HasPrefix(got, "SIP/2.0 200") {
			t.Fatalf("OPTIONS %d on a busy connection: %q", i, got)
		}
		since = start
		time.Sleep(idle / 2)
	}
	// Then it stops: closed, once idle.
	c.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("a connection that stopped after its requests was not closed: %v", err)
	}
}

// A phone's TCP connection closed for being idle is no loss: the gateway's MESSAGEs to the phone still reach
// it (over a connection of the gateway's own), and the phone's next MESSAGE comes over a new one.
func TestSIPConnectionIdleThenBothWays(t *testing.T) {
	const idle = 300 * time.Millisecond
	h := newHarness(t, func(c *config.Config) { c.Limits.SIPConnIdleTimeout = idle })
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	send := func(body string) {
		t.Helper()
		req := alice.NewMessage(bob.URI, "text/plain", body)
		req.From().Address.UriParams.Add("transport", "tcp") // answers come over TCP too
		req.SetTransport("TCP")
		res, err := alice.Do(context.Background(), h.gw.SIPAddr("tcp"), req)
		if err != nil || res.StatusCode != 202 {
			t.Fatalf("MESSAGE %q over TCP: %v %v", body, res, err)
		}
	}
	send("hello")
	cs := bob.WaitInvite()
	if m := cs.Recv(); string(m.Body) != "hello" {
		t.Fatalf("SEND %q", m.Body)
	}
	time.Sleep(3 * idle) // alice's connection is closed meanwhile
	if r := cs.Send("text/plain", "reply"); r.StatusCode != 200 || r.Err != nil {
		t.Fatalf("SEND reply: %+v", r)
	}
	m := alice.Recv()
	if string(m.Body()) != "reply" || !strings.EqualFold(m.Transport(), "TCP") {
		t.Fatalf("MESSAGE to alice: %q over %s, want \"reply\" over TCP", m.Body(), m.Transport())
	}
	time.Sleep(3 * idle)
	send("again")
	if m := cs.Recv(); string(m.Body) != "again" {
		t.Fatalf("SEND %q", m.Body)
	}
	if n := h.events.count(event.SessionStarted); n != 1 {
		t.Fatalf("%d sessions started, want 1", n)
	}
}

// failingOnce is a listener whose first Accept fails as accept(2) does when the process is out of file
// descriptors (EMFILE): a passing condition, the listener itself is fine.
type failingOnce struct {
	net.Listener
	failed atomic.Bool
}

func (l *failingOnce) Accept() (net.Conn, error) {
	if l.failed.CompareAndSwap(false, true) {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// An accept that fails for a passing reason (the process out of file descriptors for a moment, as when the
// connection bounds are near the open-file limit) does not stop the SIP TCP/TLS listener for good: sipgo's
// accept loop ends on any error, so the bounded listener carries on itself, as the MSRP listener does.
func TestSIPListenerSurvivesTransientAcceptError(t *testing.T) {
	h := newHarness(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		h.gw.srv.ServeTCP(h.gw.sipConns.listener(&failingOnce{Listener: ln}))
	}()
	t.Cleanup(func() {
		ln.Close()
		<-served
	})
	addr := ln.Addr().String()
	c := dialFrom(t, "127.0.0.2", addr)
	if got := options(t, c, addr); !strings.HasPrefix(got, "SIP/2.0 200") {
		t.Fatalf("OPTIONS after a failed accept: %q", got)
	}
}

// A gateway is ready for anything once Start returns: its INVITEs over UDP go out of its UDP listener, which
// sipgo must know by then. sipgo learns a UDP listener in the goroutine that serves it, and Start used to
// return before that had run: a MESSAGE over TCP at once (TestSIPConnectionIdleThenBothWays's first, on a
// loaded run) got its 202, and the INVITE for its session failed, sipgo binding a socket of its own to the
// listener's address (EADDRINUSE), 480 for the message. Several gateways, so that one served late shows.
func TestStartedGatewayKnowsItsUDPListener(t *testing.T) {
	for i := 0; i < 10; i++ {
		h := newHarness(t, nil)
		c := h.gw.ua.TransportLayer().Pool("udp").Get(h.udp())
		if c == nil {
			t.Fatalf("gateway %d: sipgo has no connection for the UDP listener %s once Start returned", i, h.udp())
		}
		c.TryClose() // Get took a reference
	}
}
