package gateway

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/internal/testpeer"
	"github.com/msrpgw/msrpgw/msrp/sdp"
)

// closingPhone is a page-mode phone on SIP over TCP, on raw sockets: it closes the first connection the
// gateway opens as soon as the first MESSAGE arrives on it, unanswered (a proxy restarting, a phone
// crashing), and answers 200 to every MESSAGE on any later connection.
type closingPhone struct {
	ln       net.Listener
	closed   chan time.Time    // when the first connection was closed
	received chan *sip.Request // MESSAGEs on the later connections, answered 200
	mu       sync.Mutex
	conns    []net.Conn
	first    bool
}

func newClosingPhone(t *testing.T) *closingPhone {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &closingPhone{ln: ln, closed: make(chan time.Time, 1), received: make(chan *sip.Request, 16), first: true}
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
	})
	go p.accept()
	return p
}

func (p *closingPhone) uri() string {
	return "sip:alice@" + p.ln.Addr().String() + ";transport=tcp"
}

func (p *closingPhone) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns = append(p.conns, c)
		first := p.first
		p.first = false
		p.mu.Unlock()
		go p.serve(c, first)
	}
}

func (p *closingPhone) serve(c net.Conn, first bool) {
	r := bufio.NewReader(c)
	for {
		req, err := readSIPRequest(r)
		if err != nil {
			return
		}
		if first {
			c.Close()
			p.closed <- time.Now()
			return
		}
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		if _, err := io.WriteString(c, res.String()); err != nil {
			return
		}
		p.received <- req
	}
}

// readSIPRequest reads one request from a SIP stream.
func readSIPRequest(r *bufio.Reader) (*sip.Request, error) {
	msg, err := readSIPMessage(r)
	if err != nil {
		return nil, err
	}
	req, ok := msg.(*sip.Request)
	if !ok {
		return nil, fmt.Errorf("not a request: %T", msg)
	}
	return req, nil
}

// readSIPMessage reads one message from a SIP stream: the head up to the blank line, then Content-Length
// bytes of body.
func readSIPMessage(r *bufio.Reader) (sip.Message, error) {
	tr := textproto.NewReader(r)
	var head bytes.Buffer
	n := 0
	for {
		line, err := tr.ReadLine()
		if err != nil {
			return nil, err
		}
		if line == "" && head.Len() == 0 {
			continue // keep-alive CRLFs
		}
		head.WriteString(line + "\r\n")
		if line == "" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && (strings.EqualFold(strings.TrimSpace(k), "Content-Length") || strings.TrimSpace(k) == "l") {
			n, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return sip.ParseMessage(append(head.Bytes(), body...))
}

// A MESSAGE the gateway generated over TCP whose connection closes before its final response ends at once
// as a 503 (RFC 3261 §17.1.4, §8.1.3.1), not after Timer F (32 s): its SEND gets its failure REPORT (000 408
// "503 Service Unavailable", SPEC §5) at once, with a log line saying why, and the next MESSAGE to the
// destination, held behind it (one outstanding per destination, RFC 3428 §8), goes out at once over a new
// connection.
func TestGeneratedMessageConnClosed(t *testing.T) {
	logs := newCapturedLog()
	h := newHarnessWith(t, nil, Options{Logger: slog.New(logs)})
	alice := newClosingPhone(t)
	bob := testpeer.NewClient(t, "bob")
	cs := bob.Call(h.udp(), alice.uri(), "")

	first := cs.Send("text/plain", "lost with the connection")
	if first.StatusCode != 200 {
		t.Fatalf("first SEND %+v", first)
	}
	var closedAt time.Time
	select {
	case closedAt = <-alice.closed:
	case <-time.After(waitFor):
		t.Fatal("the first MESSAGE never reached the phone")
	}
	if r := cs.Send("text/plain", "after the close"); r.StatusCode != 200 {
		t.Fatalf("second SEND %+v", r)
	}

	// Timer F is 32 s; anything near that is the defect. A few seconds leave room for a loaded machine.
	const prompt = 5 * time.Second
	select {
	case rep := <-cs.Reports():
		if rep.MessageID != first.MessageID || rep.StatusCode != 408 || rep.Comment != "503 Service Unavailable" {
			t.Fatalf("REPORT %s %d %q, want %s 408 \"503 Service Unavailable\"", rep.MessageID, rep.StatusCode, rep.Comment, first.MessageID)
		}
	case <-time.After(prompt):
		t.Fatalf("no failure REPORT within %s of the connection's close", prompt)
	}
	select {
	case req := <-alice.received:
		if got := string(req.Body()); got != "after the close" {
			t.Fatalf("next MESSAGE carries %q", got)
		}
		t.Logf("next MESSAGE reached the phone %s after the close", time.Since(closedAt).Round(time.Millisecond))
	case <-time.After(prompt):
		logs.mu.Lock()
		for _, l := range *logs.lines {
			t.Logf("gateway log: %s %v", l.msg, l.attrs)
		}
		logs.mu.Unlock()
		t.Fatalf("the next MESSAGE did not reach the phone within %s of the connection's close", prompt)
	}
	logs.wait(t, "MESSAGE failed on a transport failure, as 503", map[string]string{"ruri": alice.uri(), "err": ""})
}

// The gateway's connection-close handling leaves an INVITE server transaction that sent its 2xx alone (sipgo's
// Accepted state ignores a transport error): a session-first INVITE over TCP whose connection closes between
// the gateway's 200 and the ACK, the ACK coming on a new connection (a proxy reconnecting), still gets its
// session up.
func TestInvite200ConnClosedBeforeAck(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	cs := bob.NewSession()
	gwTCP := h.gw.SIPAddr("tcp")

	c1, err := net.Dial("tcp", gwTCP)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	local := c1.LocalAddr().(*net.TCPAddr)
	invite, err := testpeer.NewRequest(sip.INVITE, bob.URI, alice.URI, "application/sdp", bob.Media(cs, sdp.SetupActive).Marshal(1, 1))
	if err != nil {
		t.Fatal(err)
	}
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "TCP", Host: local.IP.String(), Port: local.Port, Params: sip.NewParams()}
	via.Params.Add("branch", sip.GenerateBranch())
	invite.PrependHeader(via)
	callID := sip.CallIDHeader("inv200close-" + sip.GenerateTagN(8))
	invite.AppendHeader(&callID)
	invite.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.INVITE})
	invite.AppendHeader(sip.NewHeader("Max-Forwards", "70"))
	invite.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "bob", Host: local.IP.String(), Port: local.Port, UriParams: sip.HeaderParams{{K: "transport", V: "tcp"}}}})
	if _, err := io.WriteString(c1, invite.String()); err != nil {
		t.Fatal(err)
	}
	if err := c1.SetReadDeadline(time.Now().Add(waitFor)); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c1)
	var ok *sip.Response
	for ok == nil {
		msg, err := readSIPMessage(r)
		if err != nil {
			t.Fatalf("no final response to the INVITE: %v", err)
		}
		if res, isRes := msg.(*sip.Response); isRes && !res.IsProvisional() {
			if res.StatusCode != 200 {
				t.Fatalf("INVITE answered %d %s", res.StatusCode, res.Reason)
			}
			ok = res
		}
	}
	// The connection goes before the ACK: the proxy restarting, say.
	c1.Close()

	c2, err := net.Dial("tcp", gwTCP)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	local = c2.LocalAddr().(*net.TCPAddr)
	ack := sip.NewRequest(sip.ACK, ok.Contact().Address)
	via = &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "TCP", Host: local.IP.String(), Port: local.Port, Params: sip.NewParams()}
	via.Params.Add("branch", sip.GenerateBranch())
	ack.AppendHeader(via)
	ack.AppendHeader(sip.HeaderClone(invite.From()))
	ack.AppendHeader(sip.HeaderClone(ok.To()))
	ack.AppendHeader(&callID)
	ack.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.ACK})
	ack.AppendHeader(sip.NewHeader("Max-Forwards", "70"))
	ack.SetBody(nil)
	if _, err := io.WriteString(c2, ack.String()); err != nil {
		t.Fatal(err)
	}

	cs.MSRP.SetPeerPath(sdpPath(t, ok.Body()))
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := cs.MSRP.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	h.events.waitKind(t, event.SessionStarted)
	if r := cs.Send("text/plain", "up after all"); r.StatusCode != 200 {
		t.Fatalf("SEND %+v", r)
	}
	if m := alice.Recv(); string(m.Body()) != "up after all" {
		t.Fatalf("alice got %q", m.Body())
	}
	if n := h.events.count(event.SessionEnded); n != 0 {
		t.Fatalf("%d sessions ended", n)
	}
}

// A message-first INVITE over TCP whose connection closes before any final response fails the setup at once
// as a 503 (RFC 3261 §8.1.3.1; SPEC §5: an INVITE's 5xx is the MESSAGE's response), not at setup_timeout as a
// 408: the MESSAGE gets 503 and the setup-failed notification says so.
func TestInviteConnClosedFailsSetup(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Gateway.Message.Reply = config.ReplyWait
		c.Gateway.SetupTimeout = 20 * time.Second // far beyond the prompt failure asked for
	})
	bob := newClosingPhone(t) // the session-mode side: it takes the INVITE and closes the connection
	alice := testpeer.NewPhone(t, "alice")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	res, err := alice.TrySend(ctx, h.udp(), bob.uri(), "text/plain", "hello")
	if err != nil {
		t.Fatalf("no final response to the MESSAGE within 3 s of the INVITE's connection closing: %v", err)
	}
	if res.StatusCode != 503 {
		t.Fatalf("MESSAGE answered %d %s, want 503", res.StatusCode, res.Reason)
	}
	if got, want := string(alice.Recv().Body()), "Failed to establish session, error: 503 Service Unavailable"; got != want {
		t.Fatalf("alice got %q, want %q", got, want)
	}
	if e := h.events.waitKind(t, event.SetupFailed); e.Code != 503 {
		t.Fatalf("setup-failed %+v, want code 503", e)
	}
}

// A MESSAGE over TCP whose connection is gone when its final response is ready (reply: wait holds it until the
// INVITE's answer): RFC 3261 §18.2.2, "If that connection is no longer open, the server SHOULD open a
// connection to the IP address in the "received" parameter, if present, using the port in the "sent-by"
// value". The phone (a proxy restarting) listens there; without the response it retransmits nothing over TCP
// and takes the MESSAGE as failed at Timer F.
func TestMessageResponseReopensClosedTCPConnection(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Gateway.Message.Reply = "wait"
		c.Gateway.SetupFailed.Notify = false
	})
	peer := newRawUDP(t) // the session-mode side: answers the gateway's INVITE 486
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lport := ln.Addr().(*net.TCPAddr).Port

	c1, err := net.Dial("tcp", h.gw.SIPAddr("tcp"))
	if err != nil {
		t.Fatal(err)
	}
	ruri := "sip:bob@" + peer.addr()
	msg := fmt.Sprintf("MESSAGE %s SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:%d;branch=z9hG4bK-tcpgone\r\nMax-Forwards: 70\r\n"+
		"From: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <%s>\r\nCall-ID: tcpgone-%d\r\nCSeq: 1 MESSAGE\r\n"+
		"Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello", ruri, lport, ruri, lport)
	if _, err := io.WriteString(c1, msg); err != nil {
		t.Fatal(err)
	}
	inv, from := peer.request()
	if !inv.IsInvite() {
		t.Fatalf("peer got %s, want the INVITE", inv.StartLine())
	}
	c1.Close() // before the MESSAGE's final response
	time.Sleep(200 * time.Millisecond)
	peer.answer(inv, from, 486, "Busy Here")

	ln.(*net.TCPListener).SetDeadline(time.Now().Add(3 * time.Second))
	c2, err := ln.Accept()
	if err != nil {
		t.Fatalf("no connection to the sent-by port for the MESSAGE's final response: %v", err)
	}
	defer c2.Close()
	c2.SetReadDeadline(time.Now().Add(waitFor))
	m, err := readSIPMessage(bufio.NewReader(c2))
	if err != nil {
		t.Fatal(err)
	}
	if res, ok := m.(*sip.Response); !ok || res.StatusCode != 486 || res.CSeq().MethodName != sip.MESSAGE {
		t.Fatalf("got %s, want the 486 to the MESSAGE", firstLine(m))
	}
}
