package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/internal/testpeer"
	"github.com/msrpgw/msrpgw/msrp"
	"github.com/msrpgw/msrpgw/msrp/sdp"
)

// This file is the bad-input suite of SPEC §8 over real sockets: every bad request gets its documented
// answer while a normal chat beside it loses nothing.

// sideChat is a normal MESSAGE-first chat that runs beside the bad input.
type sideChat struct {
	t     *testing.T
	h     *harness
	alice *testpeer.Phone
	bob   *testpeer.Client
	cs    *testpeer.ClientSession
	n     int
}

func startSideChat(t *testing.T, h *harness) *sideChat {
	t.Helper()
	c := &sideChat{t: t, h: h, alice: testpeer.NewPhone(t, "side-alice"), bob: testpeer.NewClient(t, "side-bob")}
	c.alice.Send(h.udp(), c.bob.URI, "text/plain", "side 0")
	c.cs = c.bob.WaitInvite()
	if m := c.cs.Recv(); string(m.Body) != "side 0" {
		t.Fatalf("side chat: got %q", m.Body)
	}
	c.exchange()
	return c
}

// exchange sends one message each way and checks that each arrives, in order, nothing lost or added.
func (c *sideChat) exchange() {
	c.t.Helper()
	c.n++
	want := fmt.Sprintf("side %d", c.n)
	if res := c.alice.Send(c.h.udp(), c.bob.URI, "text/plain", want); res.StatusCode >= 300 {
		c.t.Fatalf("side chat MESSAGE: %d %s", res.StatusCode, res.Reason)
	}
	if m := c.cs.Recv(); string(m.Body) != want {
		c.t.Fatalf("side chat to MSRP: got %q, want %q", m.Body, want)
	}
	back := fmt.Sprintf("side back %d", c.n)
	if r := c.cs.Send("text/plain", back); r.StatusCode != 200 {
		c.t.Fatalf("side chat SEND: %+v", r)
	}
	if m := c.alice.Recv(); string(m.Body()) != back {
		c.t.Fatalf("side chat to SIP: got %q, want %q", m.Body(), back)
	}
}

// gwPath is the gateway's MSRP URI of the side chat's session; peerURI the client's (the legitimate
// From-Path).
func (c *sideChat) gwPath() msrp.URI   { return c.cs.MSRP.PeerPath()[0] }
func (c *sideChat) peerURI() msrp.URI  { return c.cs.MSRP.LocalURI() }
func (c *sideChat) msrpAddr() string   { return c.h.gw.MSRPAddr() }
func (c *sideChat) sipTCPAddr() string { return c.h.gw.SIPAddr("tcp") }

// msrpFrame builds one MSRP request frame.
func msrpFrame(method, tid string, to, from msrp.URI, hdrs []string, body string, flag byte) string {
	var b strings.Builder
	fmt.Fprintf(&b, "MSRP %s %s\r\nTo-Path: %s\r\nFrom-Path: %s\r\n", tid, method, to.String(), from.String())
	for _, h := range hdrs {
		b.WriteString(h + "\r\n")
	}
	if body != "" {
		b.WriteString("\r\n" + body + "\r\n")
	}
	fmt.Fprintf(&b, "-------%s%c\r\n", tid, flag)
	return b.String()
}

func sendFrame(tid string, to, from msrp.URI, mid, body string) string {
	return msrpFrame("SEND", tid, to, from, []string{"Message-ID: " + mid, fmt.Sprintf("Byte-Range: 1-%d/%d", len(body), len(body)), "Content-Type: text/plain"}, body, '$')
}

// rawMSRP is a raw TCP connection to the gateway's MSRP port.
type rawMSRP struct {
	t       *testing.T
	nc      net.Conn
	rd      *msrp.Reader
	pending []*msrp.Message // frames read early (while waiting for a response), handed out first by next
}

func dialMSRP(t *testing.T, addr string) *rawMSRP {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawMSRP{t: t, nc: nc, rd: msrp.NewReader(nc, msrp.Limits{})}
}

func (r *rawMSRP) write(s string) {
	r.t.Helper()
	if _, err := io.WriteString(r.nc, s); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// next reads the next frame the gateway sends.
func (r *rawMSRP) next() *msrp.Message {
	r.t.Helper()
	if len(r.pending) > 0 {
		m := r.pending[0]
		r.pending = r.pending[1:]
		return m
	}
	r.nc.SetReadDeadline(time.Now().Add(waitFor))
	m, err := r.rd.ReadMessage()
	if err != nil {
		r.t.Fatalf("reading from the gateway: %v", err)
	}
	return m
}

// closedByGateway waits until the gateway closes the connection, ignoring anything it sends before.
func (r *rawMSRP) closedByGateway() {
	r.t.Helper()
	r.nc.SetReadDeadline(time.Now().Add(waitFor))
	_, err := io.Copy(io.Discard, r.nc)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		r.t.Fatalf("the gateway did not close the connection within %s", waitFor)
	}
}

// probe sends a SEND to an unknown session and returns the first frame that comes back: it must be the 481
// for the probe, which proves nothing was answered before it.
func (r *rawMSRP) probe(gw msrp.URI) *msrp.Message {
	r.t.Helper()
	to := gw
	to.SessionID = "unknownsessionid"
	from, _ := msrp.ParseURI("msrp://127.0.0.1:9/prober;tcp")
	r.write(sendFrame("probe1234", to, from, "probe-mid", "x"))
	return r.next()
}

func TestBadSIPInputBesideChat(t *testing.T) {
	h := newHarness(t, nil)
	chat := startSideChat(t, h)
	alice := testpeer.NewPhone(t, "bad-alice")
	bob := testpeer.NewClient(t, "bad-bob")

	cases := []struct {
		name  string
		ctype string
		body  string
		edit  func(req *sip.Request)
		want  int
	}{
		{name: "no content type", body: "hello", want: 400},
		{name: "empty body", ctype: "text/plain", want: 400},
		{name: "over max_message_size", ctype: "text/plain", body: strings.Repeat("x", int(h.cfg.Gateway.MaxMessageSize)+1), want: 413},
		{name: "broken From", ctype: "text/plain", body: "x", want: 400, edit: func(req *sip.Request) {
			req.RemoveHeader("From")
			req.AppendHeader(&sip.FromHeader{Address: sip.Uri{User: "nohost"}, Params: sip.NewParams()})
		}},
		{name: "From without host", ctype: "text/plain", body: "x", want: 400, edit: func(req *sip.Request) {
			from := req.From()
			from.Address = sip.Uri{Scheme: "tel", User: "+15551234"}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := alice.NewMessage(bob.URI, c.ctype, c.body)
			req.SetDestination(h.udp())
			if len(c.body) > 1000 {
				req.SetTransport("TCP")
				req.SetDestination(h.gw.SIPAddr("tcp"))
			}
			if c.edit != nil {
				c.edit(req)
			}
			res, err := doReq(alice.SIPClient(), req)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != c.want {
				t.Fatalf("got %d %s, want %d", res.StatusCode, res.Reason, c.want)
			}
			if c.want == 400 && res.GetHeader("Warning") == nil {
				t.Fatal("400 without a Warning")
			}
			chat.exchange()
		})
	}
	select {
	case <-bob.Invites():
		t.Fatal("a refused MESSAGE set up a session")
	default:
	}
}

// A 1 MiB MESSAGE over TCP is beyond sipgo's parse limit: sipgo logs the parse error and closes the
// connection without an answer (it has no message boundary to resync on); the gateway keeps serving.
func TestHugeMessageOverTCPDropped(t *testing.T) {
	h := newHarness(t, nil)
	chat := startSideChat(t, h)
	nc, err := net.Dial("tcp", chat.sipTCPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	body := strings.Repeat("x", 1<<20)
	local := nc.LocalAddr().String()
	msg := "MESSAGE sip:someone@127.0.0.1 SIP/2.0\r\n" +
		"Via: SIP/2.0/TCP " + local + ";branch=z9hG4bKhuge1\r\n" +
		"From: <sip:huge@" + local + ">;tag=huge\r\nTo: <sip:someone@127.0.0.1>\r\n" +
		"Call-ID: huge-1\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nContent-Type: text/plain\r\n" +
		fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		io.WriteString(nc, msg+body) // fails with a reset once the gateway closed: that is the point
	}()
	nc.SetReadDeadline(time.Now().Add(waitFor))
	got, err := io.ReadAll(bufio.NewReader(nc))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the gateway kept the connection open for %s", waitFor)
	}
	if len(got) != 0 {
		t.Fatalf("the gateway answered %q", got)
	}
	nc.Close()
	wg.Wait()
	chat.exchange()
}

// invitePeer sends an INVITE with a raw body through c's SIP stack and returns the final response.
func invitePeer(t *testing.T, c *testpeer.Client, gwAddr, toURI, ctype string, body []byte) *sip.Response {
	t.Helper()
	req, err := testpeer.NewRequest(sip.INVITE, c.URI, toURI, ctype, body)
	if err != nil {
		t.Fatal(err)
	}
	req.AppendHeader(&sip.ContactHeader{Address: req.From().Address})
	req.SetDestination(gwAddr)
	if len(body) > 1000 {
		req.SetTransport("TCP")
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	dlg, err := c.DialogUA().WriteInvite(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	err = dlg.WaitAnswer(ctx, sipgo.AnswerOptions{})
	if err == nil {
		dlg.Ack(ctx)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			dlg.Bye(ctx)
		})
	}
	if dlg.InviteResponse == nil {
		t.Fatalf("no response to the INVITE: %v", err)
	}
	return dlg.InviteResponse
}

func TestBadInviteBesideChat(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Gateway.SetupTimeout = time.Second })
	chat := startSideChat(t, h)
	carol := testpeer.NewPhone(t, "inv-carol")
	dave := testpeer.NewClient(t, "inv-dave")

	// A port that is certainly closed: listen, note it, close.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	many := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=message 9 TCP/MSRP *\r\n" +
		strings.Repeat("a=x-junk:0123456789\r\n", 1000) + "a=accept-types:text/plain\r\na=path:msrp://127.0.0.1:9/manylines;tcp\r\n"
	closedPort := (&sdp.Media{Host: "127.0.0.1", Port: closed, Path: []string{fmt.Sprintf("msrp://127.0.0.1:%d/closedport;tcp", closed)},
		AcceptTypes: []string{"text/plain"}, Setup: "passive"}).Marshal(1, 1)

	t.Run("SDP garbage", func(t *testing.T) {
		res := invitePeer(t, dave, h.udp(), carol.URI, "application/sdp", []byte("this is \x00 not SDP at all\r\n"))
		if res.StatusCode != 488 {
			t.Fatalf("got %d %s, want 488", res.StatusCode, res.Reason)
		}
		chat.exchange()
	})
	t.Run("1000 a= lines", func(t *testing.T) {
		// The SDP is well-formed: the gateway answers it; the peer never connects, so the session ends
		// at setup_timeout. What matters: it neither crashes nor stalls anything.
		res := invitePeer(t, dave, h.gw.SIPAddr("tcp"), carol.URI, "application/sdp", []byte(many))
		t.Logf("1000 a= lines: %d %s", res.StatusCode, res.Reason)
		if res.StatusCode != 200 && res.StatusCode != 488 {
			t.Fatalf("got %d %s, want 200 or 488", res.StatusCode, res.Reason)
		}
		chat.exchange()
	})
	t.Run("a=path to a closed port", func(t *testing.T) {
		// We answer passive, so the gateway connects: to a closed port. The INVITE is answered 200 (SDP
		// negotiation succeeded), then the connection fails and the session ends with BYE.
		res := invitePeer(t, dave, h.udp(), carol.URI, "application/sdp", closedPort)
		if res.StatusCode != 200 {
			t.Fatalf("got %d %s, want 200", res.StatusCode, res.Reason)
		}
		chat.exchange()
	})
	chat.exchange()
}

func TestBadMSRPInputBesideChat(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.MSRP.UnboundTimeout = 300 * time.Millisecond })
	chat := startSideChat(t, h)
	gw, peer := chat.gwPath(), chat.peerURI()
	forged, _ := msrp.ParseURI("msrp://127.0.0.1:9/forgedpath;tcp")

	t.Run("wrong end-line", func(t *testing.T) {
		r := dialMSRP(t, chat.msrpAddr())
		bad := strings.Replace(sendFrame("tidAAAA1", gw, forged, "m1", "hello"), "-------tidAAAA1$", "-------tidBBBB1$", 1)
		r.write(bad)
		// The frame cannot be delimited: nothing in it reaches the session, and the unbound connection is
		// closed (at the latest by unbound_timeout).
		r.closedByGateway()
		chat.exchange()
	})
	t.Run("huge header section", func(t *testing.T) {
		r := dialMSRP(t, chat.msrpAddr())
		hdrs := []string{"Message-ID: m2", "Byte-Range: 1-1/1", "X-Junk: " + strings.Repeat("j", 64<<10), "Content-Type: text/plain"}
		go io.WriteString(r.nc, msrpFrame("SEND", "tidhuge1", gw, forged, hdrs, "x", '$'))
		r.closedByGateway()
		chat.exchange()
	})
	t.Run("REPORT into a live session", func(t *testing.T) {
		r := dialMSRP(t, chat.msrpAddr())
		for _, from := range []msrp.URI{peer, forged} {
			r.write(msrpFrame("REPORT", "tidrep01", gw, from, []string{"Message-ID: nosuchmessage", "Byte-Range: 1-5/5", "Status: 000 200 OK"}, "", '$'))
		}
		if m := r.probe(gw); m.TransactionID != "probe1234" || m.StatusCode != 481 {
			t.Fatalf("first frame back: tid %s code %d; want the probe's 481 (REPORTs are never answered)", m.TransactionID, m.StatusCode)
		}
		chat.exchange()
	})
	t.Run("SEND with a forged From-Path", func(t *testing.T) {
		r := dialMSRP(t, chat.msrpAddr())
		r.write(sendFrame("tidforg1", gw, forged, "forged-mid", "FORGED"))
		m := r.next()
		if m.TransactionID != "tidforg1" || m.StatusCode != 403 {
			t.Fatalf("got tid %s code %d, want 403", m.TransactionID, m.StatusCode)
		}
		// Not delivered: the next message the phone gets is the side chat's own.
		chat.exchange()
	})
	t.Run("connection that never binds", func(t *testing.T) {
		r := dialMSRP(t, chat.msrpAddr())
		r.closedByGateway() // after msrp.unbound_timeout
		chat.exchange()
	})
	chat.exchange()
}

func TestIdleMSRPConnections(t *testing.T) {
	h := newHarness(t, nil)
	chat := startSideChat(t, h)
	conns := make([]net.Conn, 0, 2000)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < 2000; i++ {
		c, err := net.Dial("tcp", chat.msrpAddr())
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	chat.exchange()
	chat.exchange()
}

// rawPeer is a session-mode peer whose MSRP side is a raw TCP connection: it INVITEs the gateway with an
// active a=setup, connects, and then writes frames by hand.
type rawPeer struct {
	*rawMSRP
	gw, self msrp.URI
}

func newRawPeer(t *testing.T, h *harness, c *testpeer.Client, toURI string) *rawPeer {
	t.Helper()
	self, _ := msrp.ParseURI("msrp://127.0.0.1:9/" + msrp.NewSessionID() + ";tcp")
	offer := (&sdp.Media{Host: "127.0.0.1", Port: 9, Path: []string{self.String()}, AcceptTypes: []string{"text/plain"}, Setup: "active"}).Marshal(1, 1)
	res := invitePeer(t, c, h.udp(), toURI, "application/sdp", offer)
	if res.StatusCode != 200 {
		t.Fatalf("INVITE: %d %s", res.StatusCode, res.Reason)
	}
	ans, err := sdp.Parse(res.Body())
	if err != nil {
		t.Fatal(err)
	}
	path, err := msrp.ParsePath(strings.Join(ans.Path, " "))
	if err != nil {
		t.Fatal(err)
	}
	p := &rawPeer{rawMSRP: dialMSRP(t, h.gw.MSRPAddr()), gw: path[0], self: self}
	return p
}

// send sends a one-chunk SEND and returns its response code.
func (p *rawPeer) send(tid, body string) int {
	p.t.Helper()
	p.write(sendFrame(tid, p.gw, p.self, "mid-"+tid, body))
	for {
		m := p.next()
		if m.Method == "" && m.TransactionID == tid {
			return m.StatusCode
		}
	}
}

// 10,000 chunks of one message: 413 on the chunk past limits.max_chunks_per_message, and the message is
// never delivered.
func TestTenThousandChunks(t *testing.T) {
	const maxChunks = 100
	h := newHarness(t, func(c *config.Config) { c.Limits.MaxChunksPerMessage = maxChunks })
	chat := startSideChat(t, h)
	carol := testpeer.NewPhone(t, "chunk-carol")
	dave := testpeer.NewClient(t, "chunk-dave")
	p := newRawPeer(t, h, dave, carol.URI)
	if code := p.send("tidfirst1", "first"); code != 200 {
		t.Fatalf("first SEND: %d", code)
	}
	if m := carol.Recv(); string(m.Body()) != "first" {
		t.Fatalf("carol got %q", m.Body())
	}

	const n = 10000
	codes := make(chan *msrp.Message, n)
	go func() {
		for i := 0; i < n; i++ {
			p.nc.SetReadDeadline(time.Now().Add(waitFor))
			m, err := p.rd.ReadMessage()
			if err != nil {
				close(codes)
				return
			}
			codes <- m
		}
		close(codes)
	}()
	w := bufio.NewWriter(p.nc)
	for i := 1; i <= n; i++ {
		flag := byte('+')
		if i == n {
			flag = '$'
		}
		tid := fmt.Sprintf("chunk%05d", i)
		fmt.Fprintf(w, "MSRP %s SEND\r\nTo-Path: %s\r\nFrom-Path: %s\r\nMessage-ID: bigmsg\r\nByte-Range: %d-%d/%d\r\nContent-Type: text/plain\r\n\r\nx\r\n-------%s%c\r\n",
			tid, p.gw.String(), p.self.String(), i, i, n, tid, flag)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	first413 := 0
	got := 0
	for m := range codes {
		got++
		var i int
		fmt.Sscanf(m.TransactionID, "chunk%05d", &i)
		if m.StatusCode == 413 && (first413 == 0 || i < first413) {
			first413 = i
		}
		if got == n {
			break
		}
	}
	if first413 != maxChunks+1 {
		t.Fatalf("first 413 on chunk %d (of %d responses), want on chunk %d", first413, got, maxChunks+1)
	}
	// Never delivered: the next MESSAGE carol gets is the one sent after.
	if code := p.send("tidafter1", "after"); code != 200 {
		t.Fatalf("SEND after: %d", code)
	}
	if m := carol.Recv(); string(m.Body()) != "after" {
		t.Fatalf("carol got %d bytes %.20q, want \"after\"", len(m.Body()), m.Body())
	}
	chat.exchange()
}

// response waits for the gateway's response to the request tid, skipping anything else.
func (p *rawPeer) response(tid string) *msrp.Message {
	p.t.Helper()
	for {
		m := p.next()
		if m.Method == "" && m.TransactionID == tid {
			return m
		}
	}
}
