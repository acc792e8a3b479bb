package gateway

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/internal/testpeer"
)

// reviewReadResponse reads one SIP response from a TCP connection (status line, headers up to the empty line,
// Content-Length bytes of body), waiting at most d.
func reviewReadResponse(c net.Conn, br *bufio.Reader, d time.Duration) (*sip.Response, error) {
	c.SetReadDeadline(time.Now().Add(d))
	var head bytes.Buffer
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil, err
		}
		if head.Len() == 0 && strings.TrimSpace(line) == "" {
			continue // a keep-alive pong
		}
		head.WriteString(line)
		if line == "\r\n" {
			break
		}
	}
	msg, err := newSIPParser().ParseSIP(head.Bytes())
	if err != nil {
		return nil, err
	}
	res, ok := msg.(*sip.Response)
	if !ok {
		return nil, fmt.Errorf("not a response: %s", head.String())
	}
	return res, nil
}

// tcpMessage is a MESSAGE request's text over TCP (CRLF line ends), with its body as given and the
// Content-Length given (cl < 0: none).
func tcpMessage(ruri, local, branch, from, callID string, cseq int, ctype string, body []byte, cl int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "MESSAGE %s SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=%s\r\nMax-Forwards: 70\r\n"+
		"From: <%s>;tag=t1\r\nTo: <%s>\r\nCall-ID: %s\r\nCSeq: %d MESSAGE\r\nContent-Type: %s\r\n",
		ruri, local, branch, from, ruri, callID, cseq, ctype)
	if cl >= 0 {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", cl)
	}
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes()
}

// A BYE retransmission over UDP, of a BYE answered 200 already, must get that 200 again (SPEC §8: "A
// retransmission ... is answered as the first was"), also while limits.max_sip_handlers is reached:
// the bound refuses new requests with 503, not the answers already given.
func TestBYERetransmissionOverHandlerBound(t *testing.T) {
	h := newHarness(t, oneHandler)
	bob := testpeer.NewClient(t, "rvbye-bob")
	cs := bob.Call(h.udp(), "sip:rvbye-alice@127.0.0.1", "active")
	inv, res := cs.ClientDialog().InviteRequest, cs.ClientDialog().InviteResponse
	time.Sleep(500 * time.Millisecond) // the INVITE's handler gives its place back
	peer := newRawUDP(t)
	toTag, _ := res.To().Params.Get("tag")
	raw := fmt.Sprintf("BYE %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bKrvbye1;rport\nMax-Forwards: 70\n"+
		"From: %s\nTo: <%s>;tag=%s\nCall-ID: %s\nCSeq: %d BYE\nContent-Length: 0\n\n",
		res.Contact().Address.String(), peer.addr(), inv.From().Value(), inv.To().Address.String(), toTag,
		inv.CallID().Value(), inv.CSeq().SeqNo+1)
	if r := peer.exchange(h.udp(), raw); r.StatusCode != 200 {
		t.Fatalf("BYE answered %d", r.StatusCode)
	}
	time.Sleep(time.Second) // the BYE's handler waits byeGrace before it ends the session

	// Hold the only handler with a MESSAGE whose INVITE is never answered (as TestMaxSIPHandlers does).
	holdHandler(t, h, "rvbye")
	if r := peer.exchange(h.udp(), raw); r.StatusCode != 200 {
		t.Fatalf("retransmitted BYE answered %d %s (Retry-After %v), want its 200 again", r.StatusCode, r.Reason, r.GetHeader("Retry-After"))
	}
}

// RFC 3261 §18.3: a UDP request whose Content-Length is larger than the body in the datagram "the element
// SHOULD treat it as a 400 (Bad Request)". SPEC §8: bad input gets a clear error (400 with a Warning).
func TestUDPContentLengthLongerThanBody(t *testing.T) {
	h := newHarness(t, nil)
	bob := testpeer.NewClient(t, "rvcl-bob")
	alice := newRawUDP(t)
	raw := fmt.Sprintf("MESSAGE %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bKrvcl1;rport\nMax-Forwards: 70\n"+
		"From: <sip:rvcl-alice@127.0.0.1>;tag=a1\nTo: <%s>\nCall-ID: rvcl-1\nCSeq: 1 MESSAGE\nContent-Type: text/plain\n"+
		"Content-Length: 100\n\nhello", bob.URI, alice.addr(), bob.URI)
	alice.write(h.udp(), raw)
	alice.pc.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 65535)
	n, _, err := alice.pc.ReadFrom(buf)
	if err != nil {
		t.Fatalf("MESSAGE with Content-Length 100 and a 5-byte body: no answer (%v), want 400", err)
	}
	if !bytes.HasPrefix(buf[:n], []byte("SIP/2.0 400")) {
		t.Fatalf("answered %q, want 400", bytes.SplitN(buf[:n], []byte("\r\n"), 2)[0])
	}
}

// A MESSAGE body over TCP may hold NUL bytes (e.g. a CPIM-wrapped binary payload); TCP may deliver any part of
// it in a read of its own. A read holding only NULs must not be dropped: the body arrives whole and the stream
// stays framed (SPEC: nothing accepted is lost; order kept).
func TestTCPBodyNULSegment(t *testing.T) {
	h := newHarness(t, nil)
	bob := testpeer.NewClient(t, "rvnul-bob")
	c := dialFrom(t, "127.0.0.1", h.gw.SIPAddr("tcp"))
	br := bufio.NewReader(c)
	from := "sip:rvnul-alice@127.0.0.1"
	body := []byte("ab\x00\x00\x00\x00cd")
	msg := tcpMessage(bob.URI, c.LocalAddr().String(), "z9hG4bKrvnul1", from, "rvnul-1", 1, "text/plain", body, len(body))
	head := len(msg) - len(body)
	for _, part := range [][]byte{msg[:head+2], msg[head+2 : head+6], msg[head+6:]} {
		if _, err := c.Write(part); err != nil {
			t.Fatal(err)
		}
		time.Sleep(150 * time.Millisecond) // each its own segment and read
	}
	second := tcpMessage(bob.URI, c.LocalAddr().String(), "z9hG4bKrvnul2", from, "rvnul-2", 2, "text/plain", []byte("next"), 4)
	if _, err := c.Write(second); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"rvnul-1", "rvnul-2"} {
		res, err := reviewReadResponse(c, br, 3*time.Second)
		if err != nil {
			t.Errorf("answer %d (to %s): %v", i+1, want, err)
			break
		}
		if res.CallID().Value() != want || res.StatusCode/100 != 2 {
			t.Errorf("answer %d: %d %s for %s, want 2xx for %s", i+1, res.StatusCode, res.Reason, res.CallID().Value(), want)
		}
	}
	cs := bob.WaitInvite()
	if m := cs.Recv(); !bytes.Equal(m.Body, body) {
		t.Errorf("peer got body %q, want %q", m.Body, body)
	}
}

// Over TCP, a MESSAGE whose Content-Length promises more than follows is waited for, and the connection is
// closed at limits.sip_conn_idle_timeout; no handler is held meanwhile (another connection is served).
func TestTCPContentLengthNeverArrives(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Limits.SIPConnIdleTimeout = time.Second
		c.Limits.MaxSIPHandlers = 1
	})
	bob := testpeer.NewClient(t, "rvcllong-bob")
	c := dialFrom(t, "127.0.0.1", h.gw.SIPAddr("tcp"))
	from := "sip:rvcllong-alice@127.0.0.1"
	c.Write(tcpMessage(bob.URI, c.LocalAddr().String(), "z9hG4bKrvcll1", from, "rvcll-1", 1, "text/plain", []byte("hello"), 500))
	// another connection is served meanwhile
	c2 := dialFrom(t, "127.0.0.1", h.gw.SIPAddr("tcp"))
	c2.Write(tcpMessage(bob.URI, c2.LocalAddr().String(), "z9hG4bKrvcll2", from, "rvcll-2", 1, "text/plain", []byte("other"), 5))
	if res, err := reviewReadResponse(c2, bufio.NewReader(c2), 3*time.Second); err != nil || res.StatusCode/100 != 2 {
		t.Fatalf("other connection: %v %v", res, err)
	}
	start := time.Now()
	if !closedByPeer(t, c, 5*time.Second) {
		t.Fatalf("connection with an incomplete body not closed")
	}
	t.Logf("closed after %v", time.Since(start))
}

// Over TCP: CRLF keep-alives (a double CRLF gets its pong), several MESSAGEs in one segment, and one MESSAGE in
// one-byte segments, all answered and delivered in order.
func TestTCPFramingAndOrder(t *testing.T) {
	h := newHarness(t, nil)
	bob := testpeer.NewClient(t, "rvord-bob")
	c := dialFrom(t, "127.0.0.1", h.gw.SIPAddr("tcp"))
	br := bufio.NewReader(c)
	from := "sip:rvord-alice@127.0.0.1"
	local := c.LocalAddr().String()
	c.Write([]byte("\r\n\r\n"))
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	pong := make([]byte, 2)
	if _, err := br.Read(pong); err != nil || string(pong) != "\r\n" {
		t.Fatalf("pong %q %v", pong, err)
	}
	var batch []byte
	for i := 1; i <= 3; i++ {
		batch = append(batch, tcpMessage(bob.URI, local, fmt.Sprintf("z9hG4bKrvord%d", i), from, fmt.Sprintf("rvord-%d", i), i, "text/plain", []byte(fmt.Sprintf("m%d", i)), 2)...)
		batch = append(batch, "\r\n"...) // CRLF between messages (RFC 5626 keep-alive)
	}
	c.Write(batch)
	one := tcpMessage(bob.URI, local, "z9hG4bKrvord4", from, "rvord-4", 4, "text/plain", []byte("m4"), 2)
	for i := range one {
		c.Write(one[i : i+1])
		if i%40 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	for i := 1; i <= 4; i++ {
		res, err := reviewReadResponse(c, br, 3*time.Second)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		if want := fmt.Sprintf("rvord-%d", i); res.CallID().Value() != want || res.StatusCode/100 != 2 {
			t.Fatalf("answer %d: %d for %s", i, res.StatusCode, res.CallID().Value())
		}
	}
	cs := bob.WaitInvite()
	for i := 1; i <= 4; i++ {
		if m := cs.Recv(); string(m.Body) != fmt.Sprintf("m%d", i) {
			t.Fatalf("message %d: %q", i, m.Body)
		}
	}
}

// Over UDP: an empty datagram, CRLF keep-alives and a NUL-only datagram are ignored, and the listener goes on
// answering; a sender that vanished (ICMP port unreachable on the answer) does not stop the listener.
func TestUDPOddDatagramsAndVanishedSender(t *testing.T) {
	h := newHarness(t, nil)
	bob := testpeer.NewClient(t, "rvodd-bob")
	alice := newRawUDP(t)
	to, _ := net.ResolveUDPAddr("udp", h.udp())
	for _, d := range [][]byte{{}, []byte("\r\n"), []byte("\r\n\r\n"), []byte("\r\n\r\n\r\n"), make([]byte, 100), []byte("\n")} {
		if _, err := alice.pc.WriteTo(d, to); err != nil {
			t.Fatal(err)
		}
	}
	from := "sip:rvodd-alice@127.0.0.1"
	// senders that vanish before their answer: each answer meets ICMP port unreachable
	for i := 0; i < 5; i++ {
		gone, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		raw := message(bob.URI, gone.LocalAddr().String(), fmt.Sprintf("z9hG4bKrvgone%d", i), from, fmt.Sprintf("rvgone-%d", i), "text/plain", "x")
		gone.WriteTo([]byte(strings.ReplaceAll(raw, "\n", "\r\n")), to)
		gone.Close()
	}
	time.Sleep(200 * time.Millisecond)
	res := alice.exchange(h.udp(), message(bob.URI, alice.addr(), "z9hG4bKrvodd1", from, "rvodd-1", "text/plain", "after"))
	if res.StatusCode/100 != 2 {
		t.Fatalf("after odd datagrams: %d", res.StatusCode)
	}
}

// IPv6 loopback listeners (config/REFERENCE.md: "IPv6: udp:[::1]:5060"): MESSAGEs over UDP and TCP from ::1
// are answered, to the right place (bob is on IPv4: only the intake and the answer are checked).
func TestIPv6Loopback(t *testing.T) {
	if ln, err := net.ListenPacket("udp", "[::1]:0"); err != nil {
		t.Skip("no ::1")
	} else {
		ln.Close()
	}
	h := newHarness(t, func(c *config.Config) {
		c.SIP.Listen = []config.Listen{{Network: "udp", Addr: "[::1]:0"}, {Network: "tcp", Addr: "[::1]:0"}}
		c.SIP.Contact = "sip:[::1]:0"
	})
	bob := testpeer.NewClient(t, "rv6-bob")
	alice := newRawUDPOn(t, "::1")
	from := "sip:rv6-alice@[::1]"
	res := alice.exchange(h.udp(), message(bob.URI, alice.addr()+";rport", "z9hG4bKrv61", from, "rv6-1", "text/plain", "over v6"))
	if res.StatusCode/100 != 2 {
		t.Fatalf("UDP over ::1: %d %s", res.StatusCode, res.Reason)
	}
	if v := res.Via(); v == nil {
		t.Fatal("no Via")
	} else if rp, _ := v.Params.Get("rport"); rp == "" {
		t.Fatalf("Via %s: rport not filled", v.Value())
	}
	c := dialFrom(t, "::1", h.gw.SIPAddr("tcp"))
	c.Write(tcpMessage(bob.URI, c.LocalAddr().String(), "z9hG4bKrv62", from, "rv6-2", 2, "text/plain", []byte("tcp v6"), 6))
	if res, err := reviewReadResponse(c, bufio.NewReader(c), 3*time.Second); err != nil || res.StatusCode/100 != 2 {
		t.Fatalf("TCP over ::1: %v %v", res, err)
	}
}

// NUL and non-UTF-8 bytes in headers over TCP: a NUL gets 400 and the connection goes on.
func TestTCPNULInHeader(t *testing.T) {
	h := newHarness(t, nil)
	bob := testpeer.NewClient(t, "rvnh-bob")
	c := dialFrom(t, "127.0.0.1", h.gw.SIPAddr("tcp"))
	br := bufio.NewReader(c)
	local := c.LocalAddr().String()
	bad := tcpMessage(bob.URI, local, "z9hG4bKrvnh1", "sip:rvnh-alice@127.0.0.1", "rvnh-\x00-1", 1, "text/plain", []byte("x"), 1)
	c.Write(bad)
	res, err := reviewReadResponse(c, br, 3*time.Second)
	if err != nil || res.StatusCode != 400 {
		t.Fatalf("NUL in Call-ID: %v %v", res, err)
	}
	c.Write(tcpMessage(bob.URI, local, "z9hG4bKrvnh2", "sip:rvnh-\xff\xfealice@127.0.0.1", "rvnh-2", 1, "text/plain", []byte("x"), 1))
	res, err = reviewReadResponse(c, br, 3*time.Second)
	if err != nil {
		t.Fatalf("after the 400: %v", err)
	}
	if res.StatusCode/100 != 2 && res.StatusCode != 400 {
		t.Fatalf("non-UTF-8 From user: %d %s", res.StatusCode, res.Reason)
	}
}

// Over TCP, a MESSAGE without Content-Length: a clear error, or at least the connection closed, never a
// handler held.
func TestTCPNoContentLength(t *testing.T) {
	h := newHarness(t, nil)
	bob := testpeer.NewClient(t, "rvnocl-bob")
	c := dialFrom(t, "127.0.0.1", h.gw.SIPAddr("tcp"))
	br := bufio.NewReader(c)
	c.Write(tcpMessage(bob.URI, c.LocalAddr().String(), "z9hG4bKrvnocl1", "sip:rvnocl-alice@127.0.0.1", "rvnocl-1", 1, "text/plain", nil, -1))
	res, err := reviewReadResponse(c, br, 3*time.Second)
	if res != nil && res.StatusCode != 400 {
		t.Fatalf("MESSAGE without Content-Length over TCP answered %d", res.StatusCode)
	}
	if res == nil && !closedByPeer(t, c, time.Second) {
		t.Fatalf("MESSAGE without Content-Length over TCP: no answer (%v) and the connection left open", err)
	}
}

// SPEC §8: "Over a bound: that one thing is refused with a clear error; the rest of the gateway is
// unaffected." A SIP TCP peer that sends MESSAGEs and never reads their answers must not stall the MSRP
// connection those MESSAGEs went out on: in wait mode the answer is written when the SEND's 200 comes back,
// and another user's session on the same MSRP connection must still get its 200.
func TestSlowSIPReaderStallsMSRPConnection(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Gateway.Message.Reply = "wait"
		c.Gateway.Message.ReplyWait = 3 * time.Second
		c.Limits.SIPConnIdleTimeout = 60 * time.Second
	})
	bob := testpeer.NewClient(t, "rvstall-bob")
	alice := testpeer.NewPhone(t, "rvstall-alice")
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "a0"); res.StatusCode != 200 {
		t.Fatalf("alice's first MESSAGE: %d", res.StatusCode)
	}
	csA := bob.WaitInvite()
	csA.Recv()

	gw := h.gw.SIPAddr("tcp")
	slow := dialFrom(t, "127.0.0.2", gw)
	slow.(*net.TCPConn).SetReadBuffer(4096)
	local := slow.LocalAddr().String()
	from := "sip:rvstall-slow@127.0.0.2"
	slow.Write(tcpMessage(bob.URI, local, "z9hG4bKrvst0", from, "rvst-0", 1, "text/plain", []byte("s0"), 2))
	csB := bob.WaitInvite()
	got := make(chan struct{}, 4096)
	go func() {
		for range csB.Inbox() {
			got <- struct{}{}
		}
	}()
	long := strings.Repeat("x", 32<<10)
	n := 1
	for batch := 0; batch < 8; batch++ {
		for i := 0; i < 25; i++ {
			n++
			if _, err := slow.Write(tcpMessage(bob.URI, local, fmt.Sprintf("z9hG4bKrvst%d", n), from, fmt.Sprintf("%s-%d", long, n), n, "text/plain", []byte("sx"), 2)); err != nil {
				t.Fatalf("slow peer write: %v", err)
			}
		}
		time.Sleep(300 * time.Millisecond)
		start := time.Now()
		res := alice.Send(h.udp(), bob.URI, "text/plain", fmt.Sprintf("a%d", batch+1))
		if took := time.Since(start); res.StatusCode != 200 || took > 2*time.Second {
			t.Fatalf("after %d MESSAGEs from a peer that does not read its answers, alice's MESSAGE in another session on the same MSRP connection got %d %s after %v, want 200 at once",
				n, res.StatusCode, res.Reason, took.Round(time.Millisecond))
		}
	}
}

// SPEC §8: "a request repeating a recent one's Call-ID, CSeq and From-tag within 32 s, is answered as the
// first was" (recent.go: "an INVITE starting a dialog (a repeat gets the first's final response ...)") — also
// while limits.max_sip_handlers is reached.
func TestRepeatedINVITEOverHandlerBound(t *testing.T) {
	h := newHarness(t, oneHandler)
	bob := testpeer.NewClient(t, "rvinv-bob")
	cs := bob.Call(h.udp(), "sip:rvinv-alice@127.0.0.1", "active")
	inv := cs.ClientDialog().InviteRequest
	time.Sleep(500 * time.Millisecond)

	peer := newRawUDP(t)
	repeat := inv.Clone()
	repeat.RemoveHeader("Via")
	repeat.PrependHeader(&sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Host: "127.0.0.1",
		Port: peer.pc.LocalAddr().(*net.UDPAddr).Port, Params: sip.HeaderParams{{K: "branch", V: "z9hG4bKrvinvrepeat"}, {K: "rport"}}})

	holdHandler(t, h, "rvinv")
	to, _ := net.ResolveUDPAddr("udp", h.udp())
	peer.pc.WriteTo([]byte(repeat.String()), to)
	if again := peer.final(); again.StatusCode != 200 {
		t.Fatalf("repeated INVITE (same Call-ID, CSeq, From-tag; new branch) answered %d %s, want the first's 200",
			again.StatusCode, again.Reason)
	}
}

// SPEC §8: a request repeating a recent one's Call-ID, CSeq and From-tag within 32 s "is answered as the
// first was". A repeated INVITE that comes from another source (a second proxy, say) must get that answer
// itself: its response goes where its own Via says (RFC 3261 §18.2.2), not to the first INVITE's sender.
func TestRepeatedINVITEFromAnotherSource(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Gateway.Message.Reply = "wait" })
	bob := testpeer.NewClient(t, "rvinv2-bob")
	cs := bob.Call(h.udp(), "sip:rvinv2-alice@127.0.0.1", "active")
	inv := cs.ClientDialog().InviteRequest

	peer := newRawUDP(t)
	repeat := inv.Clone()
	repeat.RemoveHeader("Via")
	repeat.PrependHeader(&sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Host: "127.0.0.1",
		Port: peer.pc.LocalAddr().(*net.UDPAddr).Port, Params: sip.HeaderParams{{K: "branch", V: "z9hG4bKrvinv2repeat"}, {K: "rport"}}})
	to, _ := net.ResolveUDPAddr("udp", h.udp())
	peer.pc.WriteTo([]byte(repeat.String()), to)
	peer.pc.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 65535)
	for {
		n, _, err := peer.pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("repeated INVITE from %s (same Call-ID, CSeq, From-tag; new branch): no final answer: %v", peer.addr(), err)
		}
		if bytes.HasPrefix(buf[:n], []byte("SIP/2.0 1")) {
			continue
		}
		if !bytes.HasPrefix(buf[:n], []byte("SIP/2.0 200")) {
			t.Fatalf("repeated INVITE answered %q, want the first's 200", bytes.SplitN(buf[:n], []byte("\r\n"), 2)[0])
		}
		return
	}
}

// A MESSAGE repeating a recent one (same Call-ID, CSeq, From-tag; new branch) from another source gets the
// first's answer, at its own address, and makes no second SEND.
func TestRepeatedMESSAGEFromAnotherSource(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Gateway.Message.Reply = "wait" })
	bob := testpeer.NewClient(t, "rvmrep-bob")
	a1, a2 := newRawUDP(t), newRawUDPOn(t, "127.0.0.2")
	from := "sip:rvmrep-alice@127.0.0.1"
	first := a1.exchange(h.udp(), message(bob.URI, a1.addr(), "z9hG4bKrvm1", from, "rvmrep-1", "text/plain", "once"))
	cs := bob.WaitInvite()
	cs.Recv()
	again := a2.exchange(h.udp(), message(bob.URI, a2.addr(), "z9hG4bKrvm2", from, "rvmrep-1", "text/plain", "once"))
	if again.StatusCode != first.StatusCode {
		t.Fatalf("repeat answered %d, first %d", again.StatusCode, first.StatusCode)
	}
	if m, ok := cs.TryRecv(500 * time.Millisecond); ok {
		t.Fatalf("second SEND %q", m.Body)
	}
	// UDP: Content-Length shorter than the datagram's body: the rest is discarded (RFC 3261 §18.3)
	raw := strings.Replace(message(bob.URI, a1.addr(), "z9hG4bKrvm3", from, "rvmrep-3", "text/plain", "hello world"), "Content-Length: 11", "Content-Length: 5", 1)
	if res := a1.exchange(h.udp(), raw); res.StatusCode != 200 {
		t.Fatalf("short Content-Length: %d", res.StatusCode)
	}
	if m := cs.Recv(); string(m.Body) != "hello" {
		t.Fatalf("got %q", m.Body)
	}
}
