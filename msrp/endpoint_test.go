package msrp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitFor bounds how long a test waits for something that must happen; it is a hang guard, not a timing
// assertion.
const waitFor = 10 * time.Second

// recHandler records a session's events.
type recHandler struct {
	msgs    chan *Incoming
	reports chan *Report
	closed  chan error
	mu      sync.Mutex
	code    int                               // returned by HandleMessage (0 = 200)
	onMsg   func(s *Session, m *Incoming) int // optional
}

func newRec() *recHandler {
	return &recHandler{msgs: make(chan *Incoming, 64), reports: make(chan *Report, 64), closed: make(chan error, 4)}
}

func (h *recHandler) HandleMessage(s *Session, m *Incoming) int {
	h.mu.Lock()
	code, on := h.code, h.onMsg
	h.mu.Unlock()
	if on != nil {
		code = on(s, m)
	}
	h.msgs <- m
	return code
}
func (h *recHandler) HandleReport(s *Session, r *Report) { h.reports <- r }
func (h *recHandler) HandleClose(s *Session, err error)  { h.closed <- err }

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitFor):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

// newEP starts an endpoint listening on loopback and closes it at the end of the test.
func newEP(t *testing.T, cfg Config, secure bool) *Endpoint {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	e := NewEndpoint(cfg)
	if _, err := e.Listen("tcp", "127.0.0.1:0", secure); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// pair makes session a on ea (the offerer) and b on eb, exchanges paths and connects a.
func pair(t *testing.T, ea, eb *Endpoint, ha, hb Handler) (*Session, *Session) {
	t.Helper()
	a, b := ea.NewSession(ha), eb.NewSession(hb)
	a.SetPeerPath(b.LocalPath())
	b.SetPeerPath(a.LocalPath())
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := a.Connect(ctx); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	recv(t, b.Bound(), "passive bind")
	return a, b
}

// sendWait sends and returns the done result.
func sendWait(t *testing.T, s *Session, o *Outgoing) SendResult {
	t.Helper()
	ch := make(chan SendResult, 1)
	if err := s.Send(o, func(r SendResult) { ch <- r }); err != nil {
		t.Fatalf("Send: %v", err)
	}
	return recv(t, ch, "send result")
}

func TestEndpointPlainExchange(t *testing.T) {
	ea := newEP(t, Config{CheckFromPath: true}, false)
	eb := newEP(t, Config{CheckFromPath: true}, false)
	ha, hb := newRec(), newRec()
	a, b := pair(t, ea, eb, ha, hb)

	r := sendWait(t, a, &Outgoing{ContentType: "text/plain", Body: []byte("Hey Bob, are you there?"),
		Headers: []Header{{HdrContentDisp, "render"}}})
	if r.StatusCode != 200 || r.Err != nil || r.MessageID == "" {
		t.Fatalf("send result %+v", r)
	}
	m := recv(t, hb.msgs, "message at b")
	if string(m.Body) != "Hey Bob, are you there?" || m.ContentType != "text/plain" || m.MessageID != r.MessageID ||
		m.Chunks != 1 || m.FailureReport != "yes" || m.SuccessReport || !PathEqual(m.FromPath, a.LocalPath()) {
		t.Fatalf("incoming %+v", m)
	}
	if len(m.Headers) != 2 || m.Headers[0] != (Header{HdrContentDisp, "render"}) || m.Headers[1].Name != HdrContentType {
		t.Fatalf("MIME headers %+v", m.Headers)
	}
	// And back on the same connection.
	r = sendWait(t, b, &Outgoing{ContentType: "text/plain", Body: []byte("Hi, Alice!  I'm Bob!")})
	if r.StatusCode != 200 {
		t.Fatalf("reply result %+v", r)
	}
	if m := recv(t, ha.msgs, "message at a"); string(m.Body) != "Hi, Alice!  I'm Bob!" {
		t.Fatalf("reply %q", m.Body)
	}
	if ea.NumConns() != 1 || eb.NumConns() != 1 {
		t.Fatalf("conns %d %d", ea.NumConns(), eb.NumConns())
	}
	if err := a.Send(&Outgoing{Body: []byte("typeless")}, nil); err == nil {
		t.Fatal("Send accepted a body without ContentType")
	}
	// Handler refusal code goes back as the transaction response.
	hb.mu.Lock()
	hb.code = 415
	hb.mu.Unlock()
	r = sendWait(t, a, &Outgoing{ContentType: "image/gif", Body: []byte("GIF89a")})
	if r.StatusCode != 415 {
		t.Fatalf("refused send result %+v", r)
	}
	recv(t, hb.msgs, "refused message")
}

func TestEndpointChunked1MiB(t *testing.T) {
	ea := newEP(t, Config{}, false)
	eb := newEP(t, Config{MaxMessageSize: 2 << 20}, false)
	ha, hb := newRec(), newRec()
	a, _ := pair(t, ea, eb, ha, hb)
	body := make([]byte, 1<<20)
	for i := range body {
		body[i] = byte(i % 251)
	}
	// A dashed line with another tid inside the body must not end it.
	copy(body[5000:], "\r\n-------abcd1234$\r\n")
	r := sendWait(t, a, &Outgoing{ContentType: "application/octet-stream", Body: body, SuccessReport: true})
	if r.StatusCode != 200 {
		t.Fatalf("result %+v", r)
	}
	m := recv(t, hb.msgs, "1 MiB message")
	if !bytes.Equal(m.Body, body) || m.Chunks != 512 || !m.SuccessReport {
		t.Fatalf("got %d bytes in %d chunks", len(m.Body), m.Chunks)
	}
}

func TestEndpointInterleavedSessions(t *testing.T) {
	ea := newEP(t, Config{ChunkSize: 1000}, false)
	eb := newEP(t, Config{}, false)
	ha1, hb1, ha2, hb2 := newRec(), newRec(), newRec(), newRec()
	a1, _ := pair(t, ea, eb, ha1, hb1)
	a2, _ := pair(t, ea, eb, ha2, hb2)
	if ea.NumConns() != 1 || eb.NumConns() != 1 {
		t.Fatalf("sessions to one authority must share a connection: %d %d", ea.NumConns(), eb.NumConns())
	}
	mk := func(c byte) []byte { return bytes.Repeat([]byte{c}, 20000) }
	ch := make(chan SendResult, 2)
	for i := 0; i < 5; i++ {
		if err := a1.Send(&Outgoing{ContentType: "text/plain", Body: mk('1')}, func(r SendResult) { ch <- r }); err != nil {
			t.Fatal(err)
		}
		if err := a2.Send(&Outgoing{ContentType: "text/plain", Body: mk('2')}, func(r SendResult) { ch <- r }); err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 2; j++ {
			if r := recv(t, ch, "result"); r.StatusCode != 200 {
				t.Fatalf("%+v", r)
			}
		}
		if m := recv(t, hb1.msgs, "s1"); !bytes.Equal(m.Body, mk('1')) || m.Chunks != 20 {
			t.Fatal("session 1 got the wrong body")
		}
		if m := recv(t, hb2.msgs, "s2"); !bytes.Equal(m.Body, mk('2')) {
			t.Fatal("session 2 got the wrong body")
		}
	}
	// Closing one session keeps the shared connection for the other.
	a1.Close()
	if err := recv(t, ha1.closed, "close a1"); err != nil {
		t.Fatalf("HandleClose after Close: %v", err)
	}
	if r := sendWait(t, a2, &Outgoing{ContentType: "text/plain", Body: []byte("still here")}); r.StatusCode != 200 {
		t.Fatalf("%+v", r)
	}
	a2.Close()
	recv(t, ha2.closed, "close a2")
	waitUntil(t, "dialled connection closed with its last session", func() bool { return ea.NumConns() == 0 })
}

func waitUntil(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestEndpointReports(t *testing.T) {
	ea := newEP(t, Config{}, false)
	eb := newEP(t, Config{}, false)
	ha, hb := newRec(), newRec()
	hb.onMsg = func(s *Session, m *Incoming) int {
		if string(m.Body) == "bad" {
			if err := s.Report(m, 415, "no thanks"); err != nil {
				t.Error(err)
			}
			return 200
		}
		if err := s.Report(m, 200, "OK"); err != nil {
			t.Error(err)
		}
		return 200
	}
	a, _ := pair(t, ea, eb, ha, hb)
	r := sendWait(t, a, &Outgoing{ContentType: "text/plain", Body: []byte("hello"), SuccessReport: true})
	rep := recv(t, ha.reports, "success report")
	if rep.StatusCode != 200 || rep.MessageID != r.MessageID || rep.ByteRange != (ByteRange{1, 5, 5}) {
		t.Fatalf("report %+v", rep)
	}
	recv(t, hb.msgs, "msg")
	// No Success-Report: Report(200) sends nothing; a failure report is sent.
	sendWait(t, a, &Outgoing{ContentType: "text/plain", Body: []byte("quiet")})
	recv(t, hb.msgs, "msg")
	r = sendWait(t, a, &Outgoing{ContentType: "text/plain", Body: []byte("bad")})
	recv(t, hb.msgs, "msg")
	rep = recv(t, ha.reports, "failure report")
	if rep.StatusCode != 415 || rep.Comment != "no thanks" || rep.MessageID != r.MessageID {
		t.Fatalf("failure report %+v", rep)
	}
	select {
	case rep := <-ha.reports:
		t.Fatalf("unexpected report %+v", rep)
	default:
	}
	// Failure-Report: no -> never a failure REPORT; done fires when written with code 0.
	r = sendWait(t, a, &Outgoing{ContentType: "text/plain", Body: []byte("bad"), FailureReport: "no"})
	if r.StatusCode != 0 || r.Err != nil {
		t.Fatalf("FR no result %+v", r)
	}
	recv(t, hb.msgs, "msg")
	// A marker message with a success report proves nothing else was queued before it.
	sendWait(t, a, &Outgoing{ContentType: "text/plain", Body: []byte("marker"), SuccessReport: true})
	recv(t, hb.msgs, "marker")
	if rep := recv(t, ha.reports, "marker report"); rep.StatusCode != 200 {
		t.Fatalf("got report %+v before the marker's", rep)
	}
}

func TestEndpointPassiveBindWithoutPeerPath(t *testing.T) {
	ea := newEP(t, Config{CheckFromPath: true}, false)
	eb := newEP(t, Config{CheckFromPath: true}, false)
	ha, hb := newRec(), newRec()
	a, b := ea.NewSession(ha), eb.NewSession(hb)
	a.SetPeerPath(b.LocalPath()) // b never learns a's path from SDP
	if err := b.Send(&Outgoing{ContentType: "text/plain", Body: []byte("x")}, nil); !errors.Is(err, ErrNotBound) {
		t.Fatalf("Send before bind: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := a.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	recv(t, b.Bound(), "bind")
	if r := sendWait(t, b, &Outgoing{ContentType: "text/plain", Body: []byte("from b")}); r.StatusCode != 200 {
		t.Fatalf("%+v", r)
	}
	recv(t, ha.msgs, "msg at a")
	// Peer path set later (the SIP ACK arrived after the first SEND): still accepted, it matches.
	b.SetPeerPath(a.LocalPath())
	if r := sendWait(t, a, &Outgoing{ContentType: "text/plain", Body: []byte("x")}); r.StatusCode != 200 {
		t.Fatalf("%+v", r)
	}
}

func TestEndpointRoutingErrors(t *testing.T) {
	eb := newEP(t, Config{CheckFromPath: true}, false)
	hb := newRec()
	b := eb.NewSession(hb)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()

	t.Run("481 unknown session", func(t *testing.T) {
		ea := newEP(t, Config{}, false)
		a := ea.NewSession(newRec())
		bogus := b.LocalURI()
		bogus.SessionID = NewSessionID()
		a.SetPeerPath([]URI{bogus})
		var se *StatusError
		if err := a.Connect(ctx); !errors.As(err, &se) || se.Code != 481 {
			t.Fatalf("Connect to unknown session: %v", err)
		}
		waitUntil(t, "failed dial released", func() bool { return ea.NumConns() == 0 })
	})
	t.Run("403 forged From-Path", func(t *testing.T) {
		ea := newEP(t, Config{}, false)
		a := ea.NewSession(newRec())
		a.SetPeerPath(b.LocalPath())
		real := a.LocalURI()
		real.SessionID = "someone-else"
		b.SetPeerPath([]URI{real})
		var se *StatusError
		if err := a.Connect(ctx); !errors.As(err, &se) || se.Code != 403 {
			t.Fatalf("Connect with a forged From-Path: %v", err)
		}
		select {
		case <-b.Bound():
			t.Fatal("a forged request bound the session")
		default:
		}
	})
	t.Run("506 second connection", func(t *testing.T) {
		e1 := newEP(t, Config{}, false)
		e2 := newEP(t, Config{}, false)
		a1, a2 := e1.NewSession(newRec()), e2.NewSession(newRec())
		a1.SetPeerPath(b.LocalPath())
		a2.SetPeerPath(b.LocalPath())
		b.SetPeerPath(nil)
		if err := a1.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		var se *StatusError
		if err := a2.Connect(ctx); !errors.As(err, &se) || se.Code != 506 {
			t.Fatalf("second connection: %v", err)
		}
		// The bound connection still works.
		if r := sendWait(t, a1, &Outgoing{ContentType: "text/plain", Body: []byte("ok")}); r.StatusCode != 200 {
			t.Fatalf("%+v", r)
		}
	})
}

// rawPeer is a hand-driven MSRP peer on a plain socket.
type rawPeer struct {
	t  *testing.T
	nc net.Conn
	rd *Reader
}

func dialRaw(t *testing.T, e *Endpoint) *rawPeer {
	t.Helper()
	e.mu.Lock()
	addr := e.listeners[0].Addr().String()
	e.mu.Unlock()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawPeer{t: t, nc: nc, rd: NewReader(nc, Limits{})}
}

func (p *rawPeer) write(s string) {
	p.t.Helper()
	if _, err := p.nc.Write([]byte(strings.ReplaceAll(s, "\n", "\r\n"))); err != nil {
		p.t.Fatal(err)
	}
}

func (p *rawPeer) read() *Message {
	p.t.Helper()
	p.nc.SetReadDeadline(time.Now().Add(waitFor))
	m, err := p.rd.ReadMessage()
	if err != nil {
		p.t.Fatalf("raw peer read: %v", err)
	}
	return m
}

// sendChunk writes one text/plain chunk of message mid, from msrp://127.0.0.1:9/peer1;tcp to to, with the given
// Byte-Range and continuation flag.
func (p *rawPeer) sendChunk(to, tid, mid, br, body string, flag byte) {
	p.t.Helper()
	p.write(fmt.Sprintf("MSRP %s SEND\nTo-Path: %s\nFrom-Path: msrp://127.0.0.1:9/peer1;tcp\nMessage-ID: %s\nByte-Range: %s\nContent-Type: text/plain\n\n%s\n-------%s%c\n",
		tid, to, mid, br, body, tid, flag))
}

// expect reads one response and checks its tid and code.
func (p *rawPeer) expect(tid string, code int) *Message {
	p.t.Helper()
	m := p.read()
	if m.TransactionID != tid || m.StatusCode != code {
		p.t.Fatalf("got %s %d %q, want %s %d", m.TransactionID, m.StatusCode, m.Comment, tid, code)
	}
	return m
}

func TestEndpointRawFrames(t *testing.T) {
	eb := newEP(t, Config{MaxMessageSize: 100, MaxChunks: 3, MaxPartial: 2, Limits: Limits{MaxChunkBytes: 64}}, false)
	hb := newRec()
	b := eb.NewSession(hb)
	to := b.LocalURI().String()
	from := "msrp://127.0.0.1:9/peer1;tcp"
	p := dialRaw(t, eb)
	hdr := func(tid, method string) string {
		return fmt.Sprintf("MSRP %s %s\nTo-Path: %s\nFrom-Path: %s\n", tid, method, to, from)
	}
	send := func(tid, mid, br, body string, flag byte, extra string) {
		p.write(fmt.Sprintf("%sMessage-ID: %s\nByte-Range: %s\n%sContent-Type: text/plain\n\n%s\n-------%s%c\n",
			hdr(tid, "SEND"), mid, br, extra, body, tid, flag))
	}
	// Bind with a bodiless SEND.
	p.write(hdr("bind0001", "SEND") + "Message-ID: m0\n-------bind0001$\n")
	resp := p.expect("bind0001", 200)
	if resp.ToPath[0].String() != from || resp.FromPath[0].String() != to || resp.Body != nil {
		t.Fatalf("response paths %v %v", resp.ToPath, resp.FromPath)
	}
	recv(t, b.Bound(), "bind")

	// Out-of-order chunks with '*' range-end and an interrupted chunk (real length from the payload).
	send("c0000002", "mid1", "6-*/*", "EFGH", '$', "")
	p.expect("c0000002", 200)
	send("c0000001", "mid1", "1-10/10", "abcde", '+', "") // interrupted after 5 of 10 bytes
	p.expect("c0000001", 200)
	m := recv(t, hb.msgs, "reassembled")
	if string(m.Body) != "abcdeEFGH" || m.Chunks != 2 {
		t.Fatalf("reassembled %q in %d chunks", m.Body, m.Chunks)
	}
	// Aborted message: never delivered.
	send("a0000001", "mid2", "1-4/8", "abcd", '+', "")
	p.expect("a0000001", 200)
	send("a0000002", "mid2", "5-8/8", "EF", '#', "")
	p.expect("a0000002", 200)
	// Failure-Report partial: no 200; no: nothing at all.
	send("p0000001", "mid3", "1-2/2", "ok", '$', "Failure-Report: partial\n")
	recv(t, hb.msgs, "partial message")
	send("n0000001", "mid4", "1-2/2", "ok", '$', "Failure-Report: no\n")
	recv(t, hb.msgs, "no message")
	// Declared total over MaxMessageSize -> 413 on that chunk.
	send("big00001", "mid5", "1-10/1000", "0123456789", '+', "")
	p.expect("big00001", 413)
	// Chunk over MaxChunkBytes -> 413, stream stays usable.
	send("huge0001", "mid6", "1-*/*", strings.Repeat("x", 200), '$', "")
	p.expect("huge0001", 413)
	// Too many chunks -> 413.
	for i := 1; i <= 3; i++ {
		send(fmt.Sprintf("many%04d", i), "mid7", fmt.Sprintf("%d-%d/*", i, i), "x", '+', "")
		p.expect(fmt.Sprintf("many%04d", i), 200)
	}
	send("many0004", "mid7", "4-4/*", "x", '+', "")
	p.expect("many0004", 413)
	// Too many partial messages.
	send("part0001", "mid8", "1-1/5", "x", '+', "")
	p.expect("part0001", 200)
	send("part0002", "mid9", "1-1/5", "x", '+', "")
	p.expect("part0002", 200)
	send("part0003", "midB", "1-1/5", "x", '+', "")
	p.expect("part0003", 413)
	// Malformed Byte-Range -> 400; unknown method -> 501; REPORT never answered (next response proves it).
	send("bad00001", "midA", "0-1/1", "x", '$', "")
	p.expect("bad00001", 400)
	p.write(hdr("meth0001", "FOO") + "-------meth0001$\n")
	p.expect("meth0001", 501)
	p.write(hdr("rep00001", "REPORT") + "Message-ID: nope\nByte-Range: 1-1/1\nStatus: 000 200 OK\n-------rep00001$\n")
	r := recv(t, hb.reports, "report for unknown Message-ID")
	if r.MessageID != "nope" || r.StatusCode != 200 {
		t.Fatalf("%+v", r)
	}
	// Malformed header line -> 400.
	p.write(hdr("hdr00001", "SEND") + "Message-ID: x\nno colon here\n-------hdr00001$\n")
	p.expect("hdr00001", 400)
	// Unknown session -> 481; REPORT to unknown session: no answer.
	p.write(strings.Replace(hdr("unk00001", "REPORT"), b.ID(), "nosuchsession", 1) + "Message-ID: x\nStatus: 000 200 OK\n-------unk00001$\n")
	p.write(strings.Replace(hdr("unk00002", "SEND"), b.ID(), "nosuchsession", 1) + "Message-ID: x\n-------unk00002$\n")
	p.expect("unk00002", 481)
	// Every message delivered so far was one of the expected ones.
	select {
	case m := <-hb.msgs:
		t.Fatalf("unexpected delivery %q", m.Body)
	default:
	}
	// Garbage that cannot be delimited closes the connection.
	p.write("HTTP/1.1 200 OK\n\n")
	p.nc.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := p.rd.ReadMessage(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection not closed after garbage: %v", err)
	}
	if err := recv(t, hb.closed, "HandleClose"); !errors.Is(err, ErrConnLost) {
		t.Fatalf("HandleClose err %v", err)
	}
}

// Every request the stack refuses on its own reaches Config.OnRefused, whatever refused it: the reader (a
// malformed frame: 400, a chunk over MaxChunkBytes: 413), the routing (an unknown method: 501), the SEND
// checks (no Message-ID: 400) or the REPORT checks (a bad Status: 400, unanswered as every REPORT); and so
// does a connection closed for a frame that cannot be delimited (code 0). An application counts refusals
// from it (SPEC §5: a refused message is dropped and counted).
func TestEndpointOnRefusedBadInput(t *testing.T) {
	refused := make(chan int, 16)
	eb := newEP(t, Config{Limits: Limits{MaxChunkBytes: 64},
		OnRefused: func(code int, reason string) { refused <- code }}, false)
	b := eb.NewSession(newRec())
	to := b.LocalURI().String()
	from := "msrp://127.0.0.1:9/peer1;tcp"
	p := dialRaw(t, eb)
	hdr := func(tid, method string) string {
		return fmt.Sprintf("MSRP %s %s\nTo-Path: %s\nFrom-Path: %s\n", tid, method, to, from)
	}
	p.write(hdr("bind0001", "SEND") + "Message-ID: m0\n-------bind0001$\n")
	p.expect("bind0001", 200)

	steps := []struct {
		name  string
		frame string
		tid   string // the response expected, "" for none
		code  int
	}{
		{"chunk over MaxChunkBytes", hdr("huge0001", "SEND") + "Message-ID: m1\nByte-Range: 1-*/*\nContent-Type: text/plain\n\n" +
			strings.Repeat("x", 200) + "\n-------huge0001$\n", "huge0001", 413},
		{"malformed Byte-Range", hdr("bad00001", "SEND") + "Message-ID: m2\nByte-Range: 0-1/1\nContent-Type: text/plain\n\nx\n-------bad00001$\n", "bad00001", 400},
		{"unknown method", hdr("meth0001", "FOO") + "-------meth0001$\n", "meth0001", 501},
		{"no Message-ID", hdr("nomid001", "SEND") + "Byte-Range: 1-1/1\nContent-Type: text/plain\n\nx\n-------nomid001$\n", "nomid001", 400},
		{"malformed REPORT", hdr("rep00001", "REPORT") + "Message-ID: m3\nByte-Range: 0-1/1\nStatus: 000 200 OK\n-------rep00001$\n", "", 400},
		{"REPORT with a bad Status", hdr("rep00002", "REPORT") + "Message-ID: m3\nByte-Range: 1-1/1\nStatus: 200 OK\n-------rep00002$\n", "", 400},
	}
	for _, st := range steps {
		p.write(st.frame)
		if st.tid != "" {
			p.expect(st.tid, st.code)
		}
		select {
		case code := <-refused:
			if code != st.code {
				t.Fatalf("%s: OnRefused(%d), want %d", st.name, code, st.code)
			}
		case <-time.After(waitFor):
			t.Fatalf("%s: OnRefused not called", st.name)
		}
	}
	p.write("HTTP/1.1 200 OK\n\n")
	if code := recv(t, refused, "OnRefused for the closed connection"); code != 0 {
		t.Fatalf("closed connection: OnRefused(%d), want 0", code)
	}
}

// A '#' chunk without a body (the end-line right after the headers) aborts its message like one with an empty
// body: the partial message is dropped at once, so it neither holds one of the MaxPartial slots until it expires
// (refusing the peer's next messages 413) nor completes when more of its chunks come.
func TestEndpointBodilessAbort(t *testing.T) {
	eb := newEP(t, Config{MaxPartial: 2}, false)
	hb := newRec()
	b := eb.NewSession(hb)
	to := b.LocalURI().String()
	from := "msrp://127.0.0.1:9/peer1;tcp"
	p := dialRaw(t, eb)
	hdr := func(tid, mid, br string) string {
		return fmt.Sprintf("MSRP %s SEND\nTo-Path: %s\nFrom-Path: %s\nMessage-ID: %s\nByte-Range: %s\n", tid, to, from, mid, br)
	}
	chunk := func(tid, mid, br, body string, flag byte) string {
		return fmt.Sprintf("%sContent-Type: text/plain\n\n%s\n-------%s%c\n", hdr(tid, mid, br), body, tid, flag)
	}
	for i, mid := range []string{"gone1", "gone2"} {
		tid := fmt.Sprintf("first%03d", i)
		p.write(chunk(tid, mid, "1-3/6", "abc", '+'))
		p.expect(tid, 200)
		tid = fmt.Sprintf("abort%03d", i)
		p.write(hdr(tid, mid, "4-6/6") + "-------" + tid + "#\n")
		p.expect(tid, 200)
	}
	// Both aborted messages are gone: a new one has a slot, and a chunk that would have completed an aborted
	// one completes nothing.
	p.write(chunk("keep0001", "kept", "1-3/6", "xyz", '+'))
	p.expect("keep0001", 200)
	p.write(chunk("late0001", "gone1", "4-6/6", "def", '$'))
	p.expect("late0001", 200)
	p.write(chunk("keep0002", "kept", "4-6/6", "XYZ", '$'))
	p.expect("keep0002", 200)
	if m := recv(t, hb.msgs, "the kept message"); string(m.Body) != "xyzXYZ" {
		t.Fatalf("delivered %q (message %s), want the kept message", m.Body, m.MessageID)
	}
}

// A chunk over MaxChunkBytes, refused 413 by the reader, ends its message as any 413 does (RFC 4975 §10.5): the
// chunks received before are dropped, freeing their MaxPartial slot at once for the peer's next message, and
// the rest of the message keeps getting 413.
func TestEndpointOversizeChunkEndsItsMessage(t *testing.T) {
	eb := newEP(t, Config{MaxMessageSize: 100, MaxPartial: 1, Limits: Limits{MaxChunkBytes: 64}}, false)
	hb := newRec()
	b := eb.NewSession(hb)
	to := b.LocalURI().String()
	p := dialRaw(t, eb)
	chunk := func(tid, mid, br, body string, flag byte) { p.sendChunk(to, tid, mid, br, body, flag) }
	chunk("big00001", "big", "1-10/*", "0123456789", '+')
	p.expect("big00001", 200)
	chunk("big00002", "big", "11-*/*", strings.Repeat("x", 80), '+')
	p.expect("big00002", 413)
	chunk("next0001", "next", "1-3/6", "abc", '+')
	p.expect("next0001", 200)
	chunk("big00003", "big", "11-20/20", "abcdefghij", '$')
	p.expect("big00003", 413)
	chunk("next0002", "next", "4-6/6", "def", '$')
	p.expect("next0002", 200)
	if m := recv(t, hb.msgs, "the next message"); string(m.Body) != "abcdef" {
		t.Fatalf("delivered %q (message %s), want the next message", m.Body, m.MessageID)
	}
}

func TestEndpointUnboundTimeout(t *testing.T) {
	eb := newEP(t, Config{UnboundTimeout: 50 * time.Millisecond}, false)
	p := dialRaw(t, eb)
	p.nc.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := p.nc.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("unbound connection: read %v, want EOF", err)
	}
	waitUntil(t, "connection released", func() bool { return eb.NumConns() == 0 })
}

func TestEndpointLimits(t *testing.T) {
	eb := newEP(t, Config{MaxConnsPerIP: 1}, false)
	p1 := dialRaw(t, eb)
	waitUntil(t, "first connection registered", func() bool { return eb.NumConns() == 1 })
	p2 := dialRaw(t, eb)
	p2.nc.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := p2.nc.Read(make([]byte, 1)); err == nil {
		t.Fatal("second connection from one IP was accepted")
	}
	_ = p1
}

func TestEndpointQueueFull(t *testing.T) {
	ln := peerStopsReading(t)
	ea := newEP(t, Config{WriteQueue: 16, TransactionTimeout: time.Hour}, false)
	ha := newRec()
	a := ea.NewSession(ha)
	a.SetPeerPath([]URI{{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, SessionID: "peer", Transport: "tcp"}})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := a.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 8*2048)
	results := make(chan SendResult, 10000)
	full := false
	for i := 0; i < 10000 && !full; i++ { // at most 160 MiB: far beyond any socket buffer
		err := a.Send(&Outgoing{ContentType: "text/plain", Body: body}, func(r SendResult) { results <- r })
		switch {
		case errors.Is(err, ErrQueueFull):
			full = true
		case err != nil:
			t.Fatal(err)
		}
	}
	if !full {
		t.Fatal("write queue never filled although the peer does not read")
	}
	// Connection loss: every pending send reports an error, HandleClose is called.
	ea.Close()
	if err := recv(t, ha.closed, "HandleClose"); err == nil {
		t.Fatal("HandleClose without error on connection loss")
	}
	if r := recv(t, results, "pending send result"); r.Err == nil {
		t.Fatalf("pending send finished without error: %+v", r)
	}
}

// Sends made while the peer does not read fill the socket: whatever the sender could not write at once goes
// out later, once the peer reads, every byte and in order (conn.kick hands the rest to the writer goroutine).
func TestEndpointPeerReadsLate(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const n, size = 600, 16 << 10 // 9.4 MiB: more than the socket buffers hold
	start := make(chan struct{})
	peerErr := make(chan error, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			peerErr <- err
			return
		}
		defer nc.Close()
		nc.(*net.TCPConn).SetReadBuffer(64 << 10)
		rd := NewReader(nc, Limits{})
		bind, err := rd.ReadMessage() // Connect's binding SEND
		if err != nil {
			peerErr <- err
			return
		}
		answerOK(nc, bind)
		<-start
		next := 0 // the message whose chunks come now
		for next < n {
			m, err := rd.ReadMessage()
			if err != nil {
				peerErr <- err
				return
			}
			var i int
			if _, err := fmt.Sscanf(m.MessageID(), "m%d", &i); err != nil || (i != next && i != next+1) {
				peerErr <- fmt.Errorf("chunk of %q after message %d", m.MessageID(), next)
				return
			}
			next = i
			for _, b := range m.Body {
				if b != byte(i) {
					peerErr <- fmt.Errorf("message %d: body byte %d", i, b)
					return
				}
			}
			answerOK(nc, m)
			if m.Flag == '$' && i == n-1 {
				break
			}
		}
		peerErr <- nil
		io.Copy(io.Discard, nc)
	}()
	ea := newEP(t, Config{WriteQueue: 4 * n * size / 2048, TransactionTimeout: time.Hour}, false)
	a := connectTo(t, ea, ln, "peer")
	results := make(chan SendResult, n)
	for i := range n {
		body := bytes.Repeat([]byte{byte(i)}, size)
		if err := a.Send(&Outgoing{MessageID: fmt.Sprintf("m%d", i), ContentType: "text/plain", Body: body}, func(r SendResult) { results <- r }); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	close(start)
	if err := recv(t, peerErr, "the peer reading every message"); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if r := recv(t, results, "send result"); r.Err != nil || r.StatusCode != 200 {
			t.Fatalf("send result %d: %+v", i, r)
		}
	}
}

// Sessions sharing a connection, each sending from its own goroutine while the peer answers as it reads:
// every message arrives once, each session's in the order it sent them, and every send gets its 200. The
// senders race each other for the write side (conn.kick) and the writer goroutine.
func TestEndpointConcurrentSenders(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const senders, n = 8, 2000
	seen := make(chan *Message, senders*(n+1))
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		rd := NewReader(nc, Limits{})
		for {
			m, err := rd.ReadMessage()
			if err != nil {
				return
			}
			if len(m.Body) > 0 { // not a binding SEND
				seen <- m
			}
			answerOK(nc, m)
		}
	}()
	ea := newEP(t, Config{WriteQueue: senders * n, TransactionTimeout: time.Hour}, false)
	ss := make([]*Session, senders)
	for k := range ss {
		ss[k] = connectTo(t, ea, ln, fmt.Sprintf("peer%d", k))
	}
	if got := ea.NumConns(); got != 1 {
		t.Fatalf("%d connections, want the sessions to share one", got)
	}
	results := make(chan SendResult, senders*n)
	var wg sync.WaitGroup
	for k, s := range ss {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				id := fmt.Sprintf("s%d-%d", k, i)
				if err := s.Send(&Outgoing{MessageID: id, ContentType: "text/plain", Body: []byte(id)}, func(r SendResult) { results <- r }); err != nil {
					results <- SendResult{Err: fmt.Errorf("Send %s: %w", id, err)}
				}
			}
		}()
	}
	wg.Wait()
	for range senders * n {
		if r := recv(t, results, "send result"); r.Err != nil || r.StatusCode != 200 {
			t.Fatalf("send result: %+v", r)
		}
	}
	next := make([]int, senders)
	for range senders * n {
		m := recv(t, seen, "message at the peer")
		var k, i int
		if _, err := fmt.Sscanf(m.MessageID(), "s%d-%d", &k, &i); err != nil || k >= senders || i != next[k] || string(m.Body) != m.MessageID() {
			t.Fatalf("got %q (body %q), want s%d-%d next from that sender", m.MessageID(), m.Body, k, next[k])
		}
		next[k]++
	}
}

// answerOK answers m 200 on w, as a peer endpoint does.
func answerOK(w io.Writer, m *Message) {
	WriteMessage(w, &Message{TransactionID: m.TransactionID, StatusCode: 200, Comment: "OK", ToPath: m.FromPath[:1], FromPath: m.ToPath})
}

// connectTo makes a session of e whose peer, session id, listens at ln, and connects it.
func connectTo(t *testing.T, e *Endpoint, ln net.Listener, sessionID string) *Session {
	t.Helper()
	s := e.NewSession(newRec())
	s.SetPeerPath([]URI{{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, SessionID: sessionID, Transport: "tcp"}})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := s.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestEndpointConnectionLoss(t *testing.T) {
	// A peer that takes the message and never answers, then drops the connection.
	got := make(chan struct{})
	ha := newRec()
	a := scriptedPeer(t, Config{}, ha, func(nc net.Conn, rd *Reader) {
		if _, err := rd.ReadMessage(); err == nil {
			close(got)
		}
	})
	res := make(chan SendResult, 1)
	if err := a.Send(&Outgoing{ContentType: "text/plain", Body: []byte("lost")}, func(r SendResult) { res <- r }); err != nil {
		t.Fatal(err)
	}
	recv(t, got, "peer got the message")
	if r := recv(t, res, "result"); !errors.Is(r.Err, ErrConnLost) {
		t.Fatalf("result %+v, want ErrConnLost", r)
	}
	if err := recv(t, ha.closed, "HandleClose"); !errors.Is(err, ErrConnLost) {
		t.Fatalf("HandleClose %v", err)
	}
	if err := a.Send(&Outgoing{ContentType: "text/plain", Body: []byte("x")}, nil); !errors.Is(err, ErrNotBound) {
		t.Fatalf("Send after loss: %v", err)
	}
}

// scriptedPeer is a peer endpoint played by hand: it takes one connection, answers the bodiless SEND that
// binds with 200 and leaves the rest of the connection to script. It returns a session of a new endpoint with
// cfg and handler h, connected to it.
func scriptedPeer(t *testing.T, cfg Config, h Handler, script func(nc net.Conn, rd *Reader)) *Session {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		rd := NewReader(nc, Limits{})
		bind, err := rd.ReadMessage()
		if err != nil {
			return
		}
		WriteMessage(nc, &Message{TransactionID: bind.TransactionID, StatusCode: 200, ToPath: bind.FromPath[:1], FromPath: bind.ToPath})
		script(nc, rd)
	}()
	a := newEP(t, cfg, false).NewSession(h)
	a.SetPeerPath([]URI{{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, SessionID: "peer", Transport: "tcp"}})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := a.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	return a
}

// A session moved to another path (SetPeerPath) while a SEND it wrote is unanswered: the dialled connection
// stays until the answer comes, so the Send ends with the peer's 200 rather than ErrConnLost; then it closes.
func TestEndpointMovedSessionGetsPendingAnswer(t *testing.T) {
	release, read, closed := make(chan struct{}), make(chan struct{}), make(chan struct{})
	a := scriptedPeer(t, Config{}, newRec(), func(nc net.Conn, rd *Reader) {
		m, err := rd.ReadMessage()
		if err != nil {
			return
		}
		close(read)
		<-release
		WriteMessage(nc, &Message{TransactionID: m.TransactionID, StatusCode: 200, ToPath: m.FromPath[:1], FromPath: m.ToPath})
		for {
			if _, err := rd.ReadMessage(); err != nil {
				close(closed)
				return
			}
		}
	})
	res := make(chan SendResult, 1)
	if err := a.Send(&Outgoing{ContentType: "text/plain", Body: []byte("in flight")}, func(r SendResult) { res <- r }); err != nil {
		t.Fatal(err)
	}
	recv(t, read, "the SEND at the peer") // written and waiting for its answer
	a.SetPeerPath([]URI{{Host: "127.0.0.1", Port: 9, SessionID: "elsewhere", Transport: "tcp"}})
	select {
	case r := <-res:
		t.Fatalf("Send ended %+v when its session moved, before the answer", r)
	case <-closed:
		t.Fatal("the connection closed with a transaction open")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if r := recv(t, res, "the Send's result"); r.StatusCode != 200 || r.Err != nil {
		t.Fatalf("%+v, want the peer's 200", r)
	}
	recv(t, closed, "the connection closing after its last answer")
}

func TestEndpointTransactionTimeout(t *testing.T) {
	a := scriptedPeer(t, Config{TransactionTimeout: 20 * time.Millisecond}, newRec(), func(nc net.Conn, rd *Reader) {
		for { // reads, answers nothing
			if _, err := rd.ReadMessage(); err != nil {
				return
			}
		}
	})
	if r := sendWait(t, a, &Outgoing{ContentType: "text/plain", Body: []byte("anyone?")}); r.StatusCode != 408 {
		t.Fatalf("%+v, want 408", r)
	}
}

// A failure REPORT for a message whose SEND is still unanswered ends its Send with the REPORT's status at
// once, not with the transaction timeout; the SEND's late 200 is ignored and the REPORT still reaches the
// handler.
func TestEndpointFailureReportEndsPendingSend(t *testing.T) {
	done := make(chan struct{})
	defer close(done)
	h := newRec()
	a := scriptedPeer(t, Config{TransactionTimeout: time.Minute}, h, func(nc net.Conn, rd *Reader) {
		m, err := rd.ReadMessage()
		if err != nil {
			return
		}
		WriteMessage(nc, &Message{Method: MethodReport, TransactionID: NewTransactionID(), ToPath: m.FromPath, FromPath: m.ToPath[:1],
			Headers: []Header{{Name: HdrMessageID, Value: m.MessageID()}, {Name: HdrByteRange, Value: "1-7/7"}, {Name: HdrStatus, Value: "000 481 Session does not exist"}}})
		<-done
		WriteMessage(nc, &Message{TransactionID: m.TransactionID, StatusCode: 200, ToPath: m.FromPath[:1], FromPath: m.ToPath})
	})
	if r := sendWait(t, a, &Outgoing{ContentType: "text/plain", Body: []byte("anyone?")}); r.StatusCode != 481 || r.Err != nil || r.MessageID == "" {
		t.Fatalf("%+v, want 481 from the failure REPORT", r)
	}
	if r := recv(t, h.reports, "the REPORT"); r.StatusCode != 481 {
		t.Fatalf("REPORT %+v passed to the handler, want status 481", r)
	}
}

func TestEndpoint413StopsChunks(t *testing.T) {
	ea := newEP(t, Config{}, false)
	eb := newEP(t, Config{MaxMessageSize: 1000}, false)
	ha, hb := newRec(), newRec()
	a, _ := pair(t, ea, eb, ha, hb)
	r := sendWait(t, a, &Outgoing{ContentType: "text/plain", Body: make([]byte, 20000)})
	if r.StatusCode != 413 {
		t.Fatalf("%+v", r)
	}
	// The session still works after the refused message.
	if r := sendWait(t, a, &Outgoing{ContentType: "text/plain", Body: []byte("small")}); r.StatusCode != 200 {
		t.Fatalf("%+v", r)
	}
	if m := recv(t, hb.msgs, "small"); string(m.Body) != "small" {
		t.Fatalf("%q", m.Body)
	}
}

func selfSigned(t *testing.T) (*tls.Config, *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "msrp test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: pool}
}

func TestEndpointTLS(t *testing.T) {
	srv, cli := selfSigned(t)
	ea := newEP(t, Config{TLSConfig: srv, ClientTLSConfig: cli}, true)
	eb := newEP(t, Config{TLSConfig: srv, ClientTLSConfig: cli}, true)
	ha, hb := newRec(), newRec()
	a, b := pair(t, ea, eb, ha, hb)
	if !a.LocalURI().Secure || !strings.HasPrefix(b.LocalURI().String(), "msrps://127.0.0.1:") {
		t.Fatalf("URIs %v %v", a.LocalURI(), b.LocalURI())
	}
	body := bytes.Repeat([]byte("0123456789"), 3000)
	if r := sendWait(t, a, &Outgoing{ContentType: "text/plain", Body: body}); r.StatusCode != 200 {
		t.Fatalf("%+v", r)
	}
	if m := recv(t, hb.msgs, "tls msg"); !bytes.Equal(m.Body, body) {
		t.Fatal("body differs")
	}
	// A client that does not trust the certificate fails to connect.
	ec := newEP(t, Config{TLSConfig: srv}, true)
	c := ec.NewSession(newRec())
	c.SetPeerPath(eb.NewSession(newRec()).LocalPath())
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := c.Connect(ctx); err == nil {
		t.Fatal("connected without trusting the certificate")
	}
}

// With RxTimestamps every delivered message says when it arrived, on the dialled and the accepted side, over
// TCP and TLS (from the kernel where rawio can read its timestamps); without it Received stays zero.
func TestEndpointRxTimestamps(t *testing.T) {
	kernel := runtime.GOOS == "linux" && runtime.GOARCH != "386" // where internal/rawio stamps reads
	srv, cli := selfSigned(t)
	for _, secure := range []bool{false, true} {
		cfg := Config{RxTimestamps: true, TLSConfig: srv, ClientTLSConfig: cli}
		ea, eb := newEP(t, cfg, secure), newEP(t, cfg, secure)
		ha, hb := newRec(), newRec()
		a, b := pair(t, ea, eb, ha, hb)
		for i, dir := range []struct {
			from *Session
			to   *recHandler
		}{{a, hb}, {b, ha}, {a, hb}} {
			before := time.Now()
			if r := sendWait(t, dir.from, &Outgoing{ContentType: "text/plain", Body: []byte("hi")}); r.StatusCode != 200 {
				t.Fatalf("secure=%v send %d: %+v", secure, i, r)
			}
			m := recv(t, dir.to.msgs, "message")
			if m.Received.Before(before) || m.Received.After(time.Now()) {
				t.Fatalf("secure=%v message %d: Received %v, sent at %v", secure, i, m.Received, before)
			}
		}
		for _, e := range []*Endpoint{ea, eb} {
			e.mu.Lock()
			for c := range e.conns {
				if kernel && c.rxRaw == nil {
					t.Errorf("secure=%v: connection to %s reads without kernel timestamps", secure, c.remote)
				}
			}
			e.mu.Unlock()
		}
	}
	ea, eb := newEP(t, Config{}, false), newEP(t, Config{}, false)
	ha, hb := newRec(), newRec()
	a, _ := pair(t, ea, eb, ha, hb)
	sendWait(t, a, &Outgoing{ContentType: "text/plain", Body: []byte("hi")})
	if m := recv(t, hb.msgs, "message"); !m.Received.IsZero() {
		t.Fatalf("Received %v without RxTimestamps", m.Received)
	}
}

func TestEndpointReleasesGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		ea := NewEndpoint(Config{TransactionTimeout: time.Hour})
		eb := NewEndpoint(Config{})
		if _, err := ea.Listen("tcp", "127.0.0.1:0", false); err != nil {
			t.Fatal(err)
		}
		if _, err := eb.Listen("tcp", "127.0.0.1:0", false); err != nil {
			t.Fatal(err)
		}
		ha, hb := newRec(), newRec()
		a, _ := pair(t, ea, eb, ha, hb)
		sendWait(t, a, &Outgoing{ContentType: "text/plain", Body: []byte("x")})
		a2, _ := pair(t, ea, eb, newRec(), newRec())
		a2.Close()
		eb.Close()
		ea.Close()
		if err := recv(t, hb.closed, "b closed"); !errors.Is(err, ErrClosed) {
			t.Fatalf("HandleClose on endpoint close: %v", err)
		}
	}()
	waitUntil(t, "goroutines released", func() bool { return runtime.NumGoroutine() <= before })
}

func TestSessionPeerPathChangeUnbinds(t *testing.T) {
	ea := newEP(t, Config{}, false)
	eb := newEP(t, Config{}, false)
	a, b := pair(t, ea, eb, newRec(), newRec())
	// Same first hop: still bound.
	a.SetPeerPath(b.LocalPath())
	select {
	case <-a.Bound():
	default:
		t.Fatal("unchanged peer path unbound the session")
	}
	// New first hop (re-INVITE moved the peer): unbound, and the dialled connection is released.
	moved := b.LocalURI()
	moved.Port++
	a.SetPeerPath([]URI{moved})
	select {
	case <-a.Bound():
		t.Fatal("session still bound after its first hop changed")
	default:
	}
	if err := a.Send(&Outgoing{ContentType: "text/plain", Body: []byte("x")}, nil); !errors.Is(err, ErrNotBound) {
		t.Fatalf("Send after unbind: %v", err)
	}
	waitUntil(t, "old connection closed", func() bool { return ea.NumConns() == 0 })
	// Back to the real path: Connect again works on a new connection (b's old connection is gone too, so
	// b accepts the new one instead of answering 506).
	waitUntil(t, "b's side closed", func() bool { return eb.NumConns() == 0 })
	a.SetPeerPath(b.LocalPath())
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := a.Connect(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestSessionCloseInsideHandler(t *testing.T) {
	ea := newEP(t, Config{}, false)
	eb := newEP(t, Config{}, false)
	hb := newRec()
	hb.onMsg = func(s *Session, m *Incoming) int { s.Close(); return 200 }
	a, b := pair(t, ea, eb, newRec(), hb)
	sendWait(t, a, &Outgoing{ContentType: "text/plain", Body: []byte("bye")})
	if err := recv(t, hb.closed, "HandleClose"); err != nil {
		t.Fatalf("HandleClose(%v) after Close", err)
	}
	if eb.NumSessions() != 0 {
		t.Fatal("closed session still routable")
	}
	if err := b.Send(&Outgoing{ContentType: "text/plain", Body: []byte("x")}, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send on closed session: %v", err)
	}
	// The peer's next request gets 481.
	var se *StatusError
	r := sendWait(t, a, &Outgoing{ContentType: "text/plain", Body: []byte("anyone?")})
	if r.StatusCode != 481 {
		t.Fatalf("%+v %v", r, se)
	}
}

// After a 413 (in a response or a REPORT) the sender stops the message: no further chunk of it, not even a
// '#' one (RFC 4975 §10.5); the next message follows.
// A 413 stops the rest of the message, whether it comes as the response to a chunk or in a failure REPORT
// (RFC 4975 §10.5), also for a message sent with Failure-Report partial, whose errors are the ones a
// relay on the path reports in REPORTs (RFC 4976 §6.4.1).
func TestEndpoint413StopsMidMessage(t *testing.T) {
	for _, tc := range []struct {
		name      string
		viaReport bool
		fr        string
	}{{"response", false, "yes"}, {"REPORT", true, "yes"}, {"REPORT partial", true, "partial"}} {
		t.Run(tc.name, func(t *testing.T) { test413StopsMidMessage(t, tc.viaReport, tc.fr) })
	}
}

func test413StopsMidMessage(t *testing.T, viaReport bool, fr string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type outcome struct {
		frames int    // of the big message
		flags  string // the flags other than '+' among them
		err    error
	}
	res := make(chan outcome, 1)
	sawResult := make(chan struct{})
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			res <- outcome{err: err}
			return
		}
		defer nc.Close()
		rd := NewReader(nc, Limits{})
		reply := func(m *Message, code int) {
			WriteMessage(nc, &Message{TransactionID: m.TransactionID, StatusCode: code, ToPath: m.FromPath[:1], FromPath: m.ToPath})
		}
		m, err := rd.ReadMessage()
		if err != nil {
			res <- outcome{err: err}
			return
		}
		reply(m, 200) // bind
		var o outcome
		var big string
		for {
			m, err := rd.ReadMessage()
			if err != nil {
				o.err = err
				res <- o
				return
			}
			if big == "" {
				big = m.MessageID()
				// Say stop and read on only once the sender saw it, so the sender cannot have written more
				// than the socket buffers hold before it stopped.
				if viaReport {
					WriteMessage(nc, &Message{Method: MethodReport, TransactionID: NewTransactionID(), ToPath: m.FromPath, FromPath: m.ToPath[:1],
						Headers: []Header{{Name: HdrMessageID, Value: big}, {Name: HdrByteRange, Value: "1-2048/*"}, {Name: HdrStatus, Value: "000 413 Stop"}}})
				} else {
					reply(m, 413)
				}
				<-sawResult
			}
			if m.MessageID() != big {
				res <- o // the next message: the big one is over
				return
			}
			o.frames++
			if m.Flag != '+' {
				o.flags += string(m.Flag)
			}
		}
	}()
	ea := newEP(t, Config{}, false)
	a := ea.NewSession(newRec())
	a.SetPeerPath([]URI{{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, SessionID: "peer", Transport: "tcp"}})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := a.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	const chunks = 16384 // 32 MiB: far more than loopback socket buffers hold
	r := sendWait(t, a, &Outgoing{ContentType: "application/octet-stream", Body: make([]byte, chunks*2048), FailureReport: fr})
	if r.StatusCode != 413 {
		t.Fatalf("%+v", r)
	}
	close(sawResult)
	if err := a.Send(&Outgoing{ContentType: "text/plain", Body: []byte("next")}, func(SendResult) {}); err != nil {
		t.Fatal(err)
	}
	o := recv(t, res, "peer outcome")
	if o.err != nil || o.flags != "" || o.frames >= chunks {
		t.Fatalf("peer saw %d frames of the stopped message, flags %q (%v); want fewer than %d, all '+'", o.frames, o.flags, o.err, chunks)
	}
	t.Logf("message stopped after %d of %d chunks", o.frames, chunks)
}

func TestManyIdleSessionsAreCheap(t *testing.T) {
	e := newEP(t, Config{}, false)
	before := runtime.NumGoroutine()
	h := newRec()
	ss := make([]*Session, 100000)
	for i := range ss {
		if i < 10 {
			ss[i] = e.NewSession(h)
		} else {
			ss[i] = e.NewSession(nopHandler{}) // Close of the endpoint notifies them all
		}
	}
	if e.NumSessions() != len(ss) {
		t.Fatalf("%d sessions", e.NumSessions())
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("idle sessions started goroutines: %d -> %d", before, n)
	}
	for _, s := range ss[:10] {
		s.Close()
	}
	for range 10 {
		recv(t, h.closed, "HandleClose")
	}
	if e.NumSessions() != len(ss)-10 {
		t.Fatalf("%d sessions after closing 10", e.NumSessions())
	}
}

func TestSessionCloseFailsPendingSends(t *testing.T) {
	// A peer that binds and then never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		rd := NewReader(nc, Limits{})
		m, err := rd.ReadMessage()
		if err != nil {
			return
		}
		WriteMessage(nc, &Message{TransactionID: m.TransactionID, StatusCode: 200, ToPath: m.FromPath[:1], FromPath: m.ToPath})
		for {
			if _, err := rd.ReadMessage(); err != nil {
				return
			}
		}
	}()
	ea := newEP(t, Config{}, false)
	ha := newRec()
	a := ea.NewSession(ha)
	a.SetPeerPath([]URI{{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, SessionID: "peer", Transport: "tcp"}})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := a.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	res := make(chan SendResult, 1)
	if err := a.Send(&Outgoing{ContentType: "text/plain", Body: []byte("pending")}, func(r SendResult) { res <- r }); err != nil {
		t.Fatal(err)
	}
	a.Close()
	if r := recv(t, res, "result"); !errors.Is(r.Err, ErrClosed) {
		t.Fatalf("pending send after Close: %+v", r)
	}
	if err := recv(t, ha.closed, "HandleClose"); err != nil {
		t.Fatalf("HandleClose(%v)", err)
	}
	waitUntil(t, "dialled connection closed", func() bool { return ea.NumConns() == 0 })
}

// Close drops what is not written yet; Flush before it lets REPORTs leave: the peer gets every one although
// the session (and with it the connection it dialled) closes right after.
func TestSessionFlushBeforeClose(t *testing.T) {
	ea := newEP(t, Config{}, false)
	eb := newEP(t, Config{}, false)
	ha, hb := newRec(), newRec()
	a, b := pair(t, ea, eb, ha, hb)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := ea.NewSession(newRec()).Flush(ctx); !errors.Is(err, ErrNotBound) {
		t.Fatalf("Flush of an unbound session: %v, want ErrNotBound", err)
	}
	r := sendWait(t, b, &Outgoing{ContentType: "text/plain", Body: []byte("reported at close")})
	m := recv(t, ha.msgs, "msg")
	const reports = 50
	for i := 0; i < reports; i++ {
		if err := a.Report(m, 408, "503 Service Unavailable"); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	a.Close()
	for i := 0; i < reports; i++ {
		if rep := recv(t, hb.reports, "report"); rep.MessageID != r.MessageID || rep.StatusCode != 408 {
			t.Fatalf("report %+v", rep)
		}
	}
	if err := a.Flush(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Flush of a closed session: %v, want ErrClosed", err)
	}
}

// countHandler takes every message and counts it.
type countHandler struct{ n atomic.Int64 }

func (h *countHandler) HandleMessage(s *Session, m *Incoming) int { h.n.Add(1); return 200 }
func (h *countHandler) HandleReport(s *Session, r *Report)        {}
func (h *countHandler) HandleClose(s *Session, err error)         {}

// A peer may send requests faster than it reads their responses: the endpoint then stops reading until the
// responses are taken (TCP backpressure), and closes the connection only when none is taken for
// TransactionTimeout. The bursts are sized to overflow the kernel's socket buffers (4 MiB here), so the
// endpoint's writer really blocks.
func TestEndpointResponseBackpressure(t *testing.T) {
	setup := func(t *testing.T, timeout time.Duration) (*Endpoint, *countHandler, *rawPeer, func(tid string) string) {
		eb := newEP(t, Config{WriteQueue: 4, TransactionTimeout: timeout}, false)
		h := &countHandler{}
		b := eb.NewSession(h)
		p := dialRaw(t, eb)
		send := func(tid string) string {
			return fmt.Sprintf("MSRP %s SEND\nTo-Path: %s\nFrom-Path: msrp://127.0.0.1:9/peer1;tcp\nMessage-ID: %s\nByte-Range: 1-1/1\nContent-Type: text/plain\n\nx\n-------%s$\n",
				tid, b.LocalURI().String(), tid, tid)
		}
		p.write(send("bind0001"))
		p.expect("bind0001", 200)
		return eb, h, p, send
	}
	burst := func(p *rawPeer, send func(string) string, n int) chan error {
		done := make(chan error, 1)
		go func() {
			w := bufio.NewWriter(p.nc)
			for i := 0; i < n; i++ {
				w.WriteString(strings.ReplaceAll(send(fmt.Sprintf("t%07d", i)), "\n", "\r\n"))
			}
			done <- w.Flush()
		}()
		return done
	}

	t.Run("slow reader gets every response", func(t *testing.T) {
		const n = 100000
		eb, h, p, send := setup(t, time.Hour)
		wrote := burst(p, send, n)
		time.Sleep(300 * time.Millisecond) // responses pile up far beyond 2 × WriteQueue and the socket buffers
		for i := 0; i < n; i++ {
			p.expect(fmt.Sprintf("t%07d", i), 200)
		}
		if err := <-wrote; err != nil {
			t.Fatal(err)
		}
		if got := h.n.Load(); got != n+1 {
			t.Fatalf("handler saw %d messages, want %d", got, n+1)
		}
		if eb.NumConns() != 1 {
			t.Fatalf("%d connections, want the one still open", eb.NumConns())
		}
	})

	t.Run("peer that never reads is closed", func(t *testing.T) {
		eb, _, p, send := setup(t, 300*time.Millisecond)
		burst(p, send, 200000)
		waitUntil(t, "connection closed", func() bool { return eb.NumConns() == 0 })
	})
}

// rawTo dials one listener address of an endpoint.
func rawTo(t *testing.T, addr string) *rawPeer {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawPeer{t: t, nc: nc, rd: NewReader(nc, Limits{})}
}

// noDelivery fails when the handler gets a message within a short while.
func noDelivery(t *testing.T, h *recHandler, what string) {
	t.Helper()
	select {
	case m := <-h.msgs:
		t.Errorf("%s: delivered as a complete message: %q (%d chunks)", what, m.Body, m.Chunks)
	case <-time.After(200 * time.Millisecond):
	}
}

// A request is for one of our sessions only when its To-Path is exactly one URI, of the session's scheme,
// and an msrps session's requests come over TLS (RFC 4975 §6, §7.3): anything else gets 481 and binds nothing.
func TestEndpointRequestNotForOurSession(t *testing.T) {
	srv, _ := selfSigned(t)
	e := NewEndpoint(Config{TLSConfig: srv, Logger: testLogger(t)})
	t.Cleanup(func() { e.Close() })
	if _, err := e.Listen("tcp", "127.0.0.1:0", true); err != nil { // the first listener makes msrps URIs
		t.Fatal(err)
	}
	plain, err := e.Listen("tcp", "127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	h := newRec()
	s := e.NewSession(h)
	if !s.LocalURI().Secure {
		t.Fatalf("session URI %v, want msrps", s.LocalURI())
	}
	insecure := s.LocalURI()
	insecure.Secure = false
	for _, tc := range []struct{ what, to string }{
		{"msrps session over plain TCP", s.LocalURI().String()},
		{"msrp scheme for an msrps session", insecure.String()},
	} {
		p := rawTo(t, plain.String())
		p.write(fmt.Sprintf("MSRP tx000001 SEND\nTo-Path: %s\nFrom-Path: msrp://127.0.0.1:9/peer;tcp\nMessage-ID: m1\nByte-Range: 1-6/6\nContent-Type: text/plain\n\nsecret\n-------tx000001$\n", tc.to))
		if r := p.read(); r.StatusCode != 481 {
			t.Errorf("%s: answered %d, want 481", tc.what, r.StatusCode)
		}
		noDelivery(t, h, tc.what)
		select {
		case <-s.Bound():
			t.Fatalf("%s: the session bound", tc.what)
		default:
		}
	}
}

// A To-Path of two URIs asks us to relay, which an endpoint does not: 481 (RFC 4975 §7.3).
func TestEndpointRequestToRelay(t *testing.T) {
	e := newEP(t, Config{}, false)
	h := newRec()
	s := e.NewSession(h)
	p := dialRaw(t, e)
	p.write(fmt.Sprintf("MSRP tx000001 SEND\nTo-Path: %s msrp://127.0.0.2:2855/next;tcp\nFrom-Path: msrp://127.0.0.1:9/peer;tcp\nMessage-ID: m1\nByte-Range: 1-2/2\nContent-Type: text/plain\n\nhi\n-------tx000001$\n", s.LocalURI()))
	p.expect("tx000001", 481)
	noDelivery(t, h, "To-Path of two URIs")
}

// Without Byte-Range a chunk starts at byte 1 and is the whole message only with '$' (RFC 4975 §7.1.1): a '#'
// one is discarded, a '+' one waits for the rest.
func TestEndpointChunkWithoutByteRange(t *testing.T) {
	eb := newEP(t, Config{}, false)
	hb := newRec()
	b := eb.NewSession(hb)
	p := dialRaw(t, eb)
	to, from := b.LocalURI().String(), "msrp://127.0.0.1:9/peer;tcp"
	send := func(tid, mid, extra, body string, flag byte) {
		p.write(fmt.Sprintf("MSRP %s SEND\nTo-Path: %s\nFrom-Path: %s\nMessage-ID: %s\n%sContent-Type: text/plain\n\n%s\n-------%s%c\n", tid, to, from, mid, extra, body, tid, flag))
		p.expect(tid, 200)
	}
	send("abrt0001", "midA", "", "half a mess", '#')
	noDelivery(t, hb, "'#' chunk without Byte-Range")
	send("cont0001", "midB", "", "Hello ", '+')
	noDelivery(t, hb, "'+' chunk without Byte-Range")
	send("cont0002", "midB", "Byte-Range: 7-11/11\n", "world", '$')
	if m := recv(t, hb.msgs, "the message"); string(m.Body) != "Hello world" || m.Chunks != 2 {
		t.Fatalf("got %q in %d chunks, want \"Hello world\" in 2", m.Body, m.Chunks)
	}
}

// Losing the connection forgets the refused messages too, so MaxPartial still bounds partial messages after
// the peer reconnects.
func TestEndpointRefusedMessagesForgottenWithConnection(t *testing.T) {
	eb := newEP(t, Config{MaxMessageSize: 100, MaxPartial: 2}, false)
	hb := newRec()
	b := eb.NewSession(hb)
	to, from := b.LocalURI().String(), "msrp://127.0.0.1:9/peer;tcp"
	send := func(p *rawPeer, tid, mid, br string) int {
		p.write(fmt.Sprintf("MSRP %s SEND\nTo-Path: %s\nFrom-Path: %s\nMessage-ID: %s\nByte-Range: %s\nContent-Type: text/plain\n\nx\n-------%s+\n", tid, to, from, mid, br, tid))
		return p.read().StatusCode
	}
	bind := func(p *rawPeer) {
		p.write(fmt.Sprintf("MSRP bind0001 SEND\nTo-Path: %s\nFrom-Path: %s\nMessage-ID: m0\n-------bind0001$\n", to, from))
		p.expect("bind0001", 200)
	}
	p1 := dialRaw(t, eb)
	bind(p1)
	for i := range 2 { // two refused messages, remembered so that their later chunks get 413 too
		if c := send(p1, fmt.Sprintf("big%05d", i), fmt.Sprintf("big%d", i), "1-1/1000"); c != 413 {
			t.Fatalf("message over the size limit: %d, want 413", c)
		}
	}
	p1.nc.Close()
	recv(t, hb.closed, "HandleClose after the connection's loss")
	p2 := dialRaw(t, eb)
	bind(p2)
	codes := make([]int, 3)
	for i := range codes {
		codes[i] = send(p2, fmt.Sprintf("prt%05d", i), fmt.Sprintf("part%d", i), "1-1/5")
	}
	if codes[0] != 200 || codes[1] != 200 || codes[2] != 413 {
		t.Fatalf("three partial messages with MaxPartial 2 after a reconnect: %v, want [200 200 413]", codes)
	}
}

// SetPeerPath moving the first hop while Connect dials (here: a TLS handshake held by a proxy) unbinds nothing,
// the session being unbound yet: Connect then binds to the new first hop, not to the connection it dialled
// to the old one.
func TestConnectFollowsPeerPathChangedWhileDialling(t *testing.T) {
	srv, cli := selfSigned(t)
	ea := newEP(t, Config{TLSConfig: srv, ClientTLSConfig: cli}, true)
	eb := newEP(t, Config{TLSConfig: srv, ClientTLSConfig: cli}, true)
	a, old, moved := ea.NewSession(newRec()), eb.NewSession(newRec()), eb.NewSession(newRec())
	target := old.LocalURI()

	// The old first hop: a proxy to eb that holds each connection until release.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted, release := make(chan net.Conn, 1), make(chan struct{})
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		accepted <- c
		<-release
		up, err := net.Dial("tcp", net.JoinHostPort(target.Host, fmt.Sprint(target.Port)))
		if err != nil {
			c.Close()
			return
		}
		go func() { io.Copy(up, c); up.Close() }()
		io.Copy(c, up)
		c.Close()
	}()
	via := target
	via.Port = ln.Addr().(*net.TCPAddr).Port
	a.SetPeerPath([]URI{via})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Connect(ctx) }()
	held := recv(t, accepted, "Connect's dial")
	defer held.Close()
	a.SetPeerPath(moved.LocalPath())
	close(release)
	if err := recv(t, done, "Connect"); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	recv(t, moved.Bound(), "bind of the new first hop")
	select {
	case <-old.Bound():
		t.Fatal("bound to the old first hop")
	default:
	}
}

// A handler that reports on a message at once, before HandleMessage returns, does not get the REPORT onto the
// wire ahead of the SEND's response: the peer learns the transaction's result first.
func TestEndpointReportFollowsResponse(t *testing.T) {
	paths := make(chan []URI, 1)
	got := make(chan *Message, 2)
	h := newRec()
	h.onMsg = func(s *Session, m *Incoming) int {
		reported := make(chan error, 1)
		go func() { reported <- s.Report(m, 403, "Forbidden") }()
		if err := <-reported; err != nil {
			t.Errorf("Report: %v", err)
		}
		return 200
	}
	a := scriptedPeer(t, Config{}, h, func(nc net.Conn, rd *Reader) {
		local := <-paths
		peer := URI{Host: "127.0.0.1", Port: 9, SessionID: "peer", Transport: "tcp"}
		WriteMessage(nc, &Message{Method: MethodSend, TransactionID: NewTransactionID(), ToPath: local, FromPath: []URI{peer},
			Headers: []Header{{Name: HdrMessageID, Value: "m1"}, {Name: HdrByteRange, Value: "1-2/2"}, {Name: HdrContentType, Value: "text/plain"}},
			Body:    []byte("hi")})
		for range 2 {
			m, err := rd.ReadMessage()
			if err != nil {
				return
			}
			got <- m
		}
	})
	paths <- a.LocalPath()
	first, second := recv(t, got, "the first frame"), recv(t, got, "the second frame")
	if first.StatusCode != 200 || second.Method != MethodReport {
		t.Fatalf("got %q %d, then %q %d; want the SEND's 200, then the REPORT", first.Method, first.StatusCode, second.Method, second.StatusCode)
	}
}

// A request whose To-Path or From-Path has an IP address without a port breaks RFC 4975 §6: 400, nothing
// delivered, the session not bound (a REPORT gets no answer either). A host name without a port is legal
// there and is served.
func TestEndpointPathIPWithoutPort(t *testing.T) {
	e := newEP(t, Config{}, false)
	h := newRec()
	s := e.NewSession(h)
	to := s.LocalURI()
	noPort := to
	noPort.Port = 0
	p := dialRaw(t, e)
	frame := func(tid, method, to, from, extra string) string {
		return fmt.Sprintf("MSRP %s %s\nTo-Path: %s\nFrom-Path: %s\nMessage-ID: m-%s\n%sContent-Type: text/plain\n\nhello\n-------%s$\n",
			tid, method, to, from, tid, extra, tid)
	}
	for _, tc := range []struct{ what, tid, to, from string }{
		{"From-Path IPv4 without port", "nop00001", to.String(), "msrp://127.0.0.1/peer;tcp"},
		{"From-Path IPv6 without port", "nop00002", to.String(), "msrp://[::1]/peer;tcp"},
		{"To-Path IP without port", "nop00003", noPort.String(), "msrp://127.0.0.1:9/peer;tcp"},
	} {
		p.write(frame(tc.tid, "SEND", tc.to, tc.from, "Byte-Range: 1-5/5\n"))
		if r := p.expect(tc.tid, 400); len(r.ToPath) != 1 || r.ToPath[0].String() != tc.from {
			t.Errorf("%s: 400 addressed to %v, want the sender's %s", tc.what, r.ToPath, tc.from)
		}
		noDelivery(t, h, tc.what)
	}
	p.write(frame("nop00004", "REPORT", to.String(), "msrp://127.0.0.1/peer;tcp", "Status: 000 200 OK\n"))
	select {
	case <-s.Bound():
		t.Fatal("a refused request bound the session")
	default:
	}
	// A host name without a port: served (and the REPORT above was not answered: this is the next frame).
	p.write(frame("ok000001", "SEND", to.String(), "msrp://peer.example/peer;tcp", "Byte-Range: 1-5/5\n"))
	p.expect("ok000001", 200)
	if m := recv(t, h.msgs, "message from a host name without port"); string(m.Body) != "hello" {
		t.Fatalf("delivered %q", m.Body)
	}
	select {
	case r := <-h.reports:
		t.Fatalf("REPORT with an IP From-Path without port delivered: %+v", r)
	default:
	}
}

// A peer path without a port gives Connect nothing to dial: no 2855 is guessed (RFC 4975 §6, §15.4).
func TestConnectNeedsPort(t *testing.T) {
	e := newEP(t, Config{}, false)
	s := e.NewSession(newRec())
	peer, err := ParsePath("msrp://127.0.0.1/abc;tcp")
	if err != nil {
		t.Fatal(err)
	}
	s.SetPeerPath(peer)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := s.Connect(ctx); !errors.Is(err, ErrNoPort) {
		t.Fatalf("Connect = %v, want ErrNoPort", err)
	}
	if n := e.NumConns(); n != 0 {
		t.Fatalf("%d connections after a Connect with nothing to dial", n)
	}
}

// Behind a relay the peer path is relay then peer: the peer's requests come with that whole From-Path, and a
// relay that could not deliver one of our messages reports it itself, its REPORT's From-Path only the relay
// (RFC 4976 §6.4.1). With CheckFromPath such a REPORT still reaches the handler, and ends the Send it names
// when no response settled it yet; a SEND from the relay alone, or a REPORT from off the path, does not pass.
func TestEndpointReportFromRelayOnPeerPath(t *testing.T) {
	e := newEP(t, Config{CheckFromPath: true, TransactionTimeout: time.Minute}, false)
	h := newRec()
	s := e.NewSession(h)
	relay, peer := "msrp://127.0.0.1:9/relay1;tcp", "msrp://127.0.0.1:10/peer1;tcp"
	path, err := ParsePath(relay + " " + peer)
	if err != nil {
		t.Fatal(err)
	}
	s.SetPeerPath(path)
	p := dialRaw(t, e)
	to := s.LocalURI().String()
	p.write(fmt.Sprintf("MSRP bind0001 SEND\nTo-Path: %s\nFrom-Path: %s %s\nMessage-ID: b1\n-------bind0001$\n", to, relay, peer))
	p.expect("bind0001", 200)
	recv(t, s.Bound(), "the binding")

	res := make(chan SendResult, 1)
	if err := s.Send(&Outgoing{MessageID: "relayed1", ContentType: "text/plain", Body: []byte("hi")}, func(r SendResult) { res <- r }); err != nil {
		t.Fatal(err)
	}
	if m := p.read(); m.Method != MethodSend || m.MessageID() != "relayed1" || FormatPath(m.ToPath) != relay+" "+peer {
		t.Fatalf("sent %s %s to %s, want SEND relayed1 to the whole peer path", m.Method, m.MessageID(), FormatPath(m.ToPath))
	}
	report := func(tid, from, id, status string) {
		p.write(fmt.Sprintf("MSRP %s REPORT\nTo-Path: %s\nFrom-Path: %s\nMessage-ID: %s\nByte-Range: 1-2/2\nStatus: %s\n-------%s$\n", tid, to, from, id, status, tid))
	}
	report("rep00001", "msrp://127.0.0.1:11/stranger;tcp", "relayed1", "000 408 not from the path")
	report("rep00002", peer, "relayed1", "000 408 the peer without its relay")
	report("rep00003", relay, "relayed1", "000 408 Timeout")
	if r := recv(t, res, "the Send's result"); r.StatusCode != 408 || r.MessageID != "relayed1" {
		t.Fatalf("Send ended %+v, want 408 from the relay's REPORT", r)
	}
	if r := recv(t, h.reports, "the relay's REPORT"); r.StatusCode != 408 || r.Comment != "Timeout" {
		t.Fatalf("handler got REPORT %+v first, want the relay's 408", r)
	}
	report("rep00004", relay+" "+peer, "other1", "000 200 OK")
	if r := recv(t, h.reports, "the peer's REPORT"); r.StatusCode != 200 || r.MessageID != "other1" {
		t.Fatalf("handler got REPORT %+v, want the peer's 200 for other1", r)
	}
	p.write(fmt.Sprintf("MSRP send0002 SEND\nTo-Path: %s\nFrom-Path: %s\nMessage-ID: m2\nByte-Range: 1-2/2\nContent-Type: text/plain\n\nhi\n-------send0002$\n", to, relay))
	p.expect("send0002", 403)
	noDelivery(t, h, "a SEND from the relay alone")
}

// Flush while a REPORT waits for its SEND's response (the handler reported at once and has not returned) still
// means "everything queued so far is written": the REPORT goes then, ahead of the response, rather than Flush
// returning with it unwritten (a Close that follows would drop it).
func TestEndpointFlushWritesHeldReport(t *testing.T) {
	e := newEP(t, Config{}, false)
	h := newRec()
	reported, release := make(chan *Session, 1), make(chan struct{})
	h.onMsg = func(s *Session, m *Incoming) int {
		if err := s.Report(m, 403, "Forbidden"); err != nil {
			t.Errorf("Report: %v", err)
		}
		reported <- s
		<-release
		return 200
	}
	s := e.NewSession(h)
	p := dialRaw(t, e)
	p.write(fmt.Sprintf("MSRP held0001 SEND\nTo-Path: %s\nFrom-Path: msrp://127.0.0.1:9/peer;tcp\nMessage-ID: m1\nByte-Range: 1-2/2\nContent-Type: text/plain\n\nhi\n-------held0001$\n", s.LocalURI()))
	recv(t, reported, "the handler's REPORT")
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	err := s.Flush(ctx)
	p.nc.SetReadDeadline(time.Now().Add(time.Second))
	m, rerr := p.rd.ReadMessage()
	close(release)
	if err != nil || rerr != nil || m.Method != MethodReport {
		t.Fatalf("Flush: %v; then the peer read %v, %v; want the REPORT written by then", err, m, rerr)
	}
	p.expect("held0001", 200)
}

// A REPORT whose Byte-Range does not parse never reaches the handler (the reader refuses the frame): what it
// reports on is unknown, and a zero ByteRange, which means the whole message, would make a partial success
// read as delivery. One without Byte-Range is about the whole message and is delivered with a zero ByteRange.
func TestEndpointReportBadByteRangeIgnored(t *testing.T) {
	e := newEP(t, Config{}, false)
	h := newRec()
	s := e.NewSession(h)
	to := s.LocalURI().String()
	from := "msrp://127.0.0.1:9/peer;tcp"
	p := dialRaw(t, e)
	p.write(fmt.Sprintf("MSRP bind0001 SEND\nTo-Path: %s\nFrom-Path: %s\nMessage-ID: bind\n-------bind0001$\n", to, from))
	p.expect("bind0001", 200)
	report := func(tid, id, extra string) string {
		return fmt.Sprintf("MSRP %s REPORT\nTo-Path: %s\nFrom-Path: %s\nMessage-ID: %s\n%sStatus: 000 200 OK\n-------%s$\n",
			tid, to, from, id, extra, tid)
	}
	p.write(report("rep00001", "bad-range", "Byte-Range: 1-2048/1000\n"))
	p.write(report("rep00002", "no-range", ""))
	p.write(report("rep00003", "good", "Byte-Range: 1-5/5\n"))
	if r := recv(t, h.reports, "the REPORT without Byte-Range"); r.MessageID != "no-range" || r.ByteRange != (ByteRange{}) {
		t.Fatalf("first REPORT delivered %+v, want no-range with a zero ByteRange", r)
	}
	if r := recv(t, h.reports, "the good REPORT"); r.MessageID != "good" || r.ByteRange != (ByteRange{1, 5, 5}) {
		t.Fatalf("second REPORT delivered %+v, want good 1-5/5", r)
	}
}

// kaHandler is a recHandler that also counts bodiless SENDs (KeepAliveHandler).
type kaHandler struct {
	*recHandler
	kas chan struct{}
}

func (h *kaHandler) HandleKeepAlive(*Session) { h.kas <- struct{}{} }

// Config.KeepAlive: a connection nothing is written on gets bodiless SENDs of a session on it, from both
// ends, each answered 200 by the peer's stack, handed to no HandleMessage; the session carries on.
func TestKeepAliveOnQuietConnection(t *testing.T) {
	cfg := Config{CheckFromPath: true, KeepAlive: 100 * time.Millisecond}
	ea, eb := newEP(t, cfg, false), newEP(t, cfg, false)
	ha := &kaHandler{newRec(), make(chan struct{}, 1024)}
	hb := &kaHandler{newRec(), make(chan struct{}, 1024)}
	a, _ := pair(t, ea, eb, ha, hb)
	for i := 0; i < 3; i++ { // the first at b may be the binding SEND of Connect
		recv(t, hb.kas, "keep-alive at b (a dialled)")
		recv(t, ha.kas, "keep-alive at a (b accepted)")
	}
	select {
	case m := <-hb.msgs:
		t.Fatalf("a keep-alive reached HandleMessage: %+v", m)
	case m := <-ha.msgs:
		t.Fatalf("a keep-alive reached HandleMessage: %+v", m)
	default:
	}
	if r := sendWait(t, a, &Outgoing{ContentType: "text/plain", Body: []byte("still here")}); r.StatusCode != 200 {
		t.Fatalf("send after keep-alives: %+v", r)
	}
	if m := recv(t, hb.msgs, "message at b"); string(m.Body) != "still here" {
		t.Fatalf("b got %q", m.Body)
	}
}

// A connection carrying one session bound to it and many the relay on their peers' paths only forwards on
// (their own connections are others) still gets its keep-alives: the bodiless SEND goes for the session bound
// to it, found among the others, not left to which session a look happens to come upon first.
func TestKeepAliveFindsTheBoundSession(t *testing.T) {
	const keepAlive = 200 * time.Millisecond
	const relay = "msrp://127.0.0.1:7001/ka;tcp"
	e := newEP(t, Config{KeepAlive: keepAlive}, false)
	send := func(p *rawPeer, s *Session, peer, tid string) {
		t.Helper()
		p.write(fmt.Sprintf("MSRP %s SEND\nTo-Path: %s\nFrom-Path: %s %s\nMessage-ID: %s\n-------%s$\n", tid, s.LocalURI(), relay, peer, tid, tid))
		p.expect(tid, 200)
	}
	shared := dialRaw(t, e)
	bound := e.NewSession(newRec())
	bound.SetPeerPath(mustPath(t, relay+" msrp://127.0.0.1:7002/bound;tcp"))
	send(shared, bound, "msrp://127.0.0.1:7002/bound;tcp", "bind0000")
	for i := 1; i <= 40; i++ {
		peer := fmt.Sprintf("msrp://127.0.0.1:7002/via%d;tcp", i)
		s := e.NewSession(newRec())
		s.SetPeerPath(mustPath(t, relay+" "+peer))
		send(dialRaw(t, e), s, peer, fmt.Sprintf("bind%04d", i))
		send(shared, s, peer, fmt.Sprintf("other%03d", i))
	}
	// Looked at every keepAlive/2, a quiet connection gets one at most keepAlive after the last; 5 × that
	// leaves room for a slow run. (Before, a look found the bound session one time in 41.)
	for i := 0; i < 4; i++ {
		shared.nc.SetReadDeadline(time.Now().Add(5 * keepAlive))
		m, err := shared.rd.ReadMessage()
		if err != nil {
			t.Fatalf("keep-alive %d on the shared connection: %v", i, err)
		}
		if m.Method != MethodSend || m.Body != nil || m.ToPath[len(m.ToPath)-1].SessionID != "bound" {
			t.Fatalf("got %s to %s, want a bodiless SEND of the bound session", m.Method, FormatPath(m.ToPath))
		}
		shared.write(fmt.Sprintf("MSRP %s 200 OK\nTo-Path: %s\nFrom-Path: %s\n-------%s$\n", m.TransactionID, FormatPath(m.FromPath), FormatPath(m.ToPath[:1]), m.TransactionID))
	}
}

// The shortest KeepAlive there is, 1 ns, is a setting like any other (config accepts any duration above 0): its
// looks come as often as they can, they do not stop the Endpoint (time.NewTicker panics on KeepAlive/2 = 0).
func TestKeepAliveShortest(t *testing.T) {
	cfg := Config{KeepAlive: time.Nanosecond}
	ea, eb := newEP(t, cfg, false), newEP(t, cfg, false)
	hb := &kaSeen{recHandler: newRec(), seen: make(chan struct{})}
	pair(t, ea, eb, newRec(), hb)
	recv(t, hb.seen, "keep-alive at b")
}

// kaSeen is a recHandler whose seen closes at the first bodiless SEND (KeepAliveHandler); never blocks.
type kaSeen struct {
	*recHandler
	once sync.Once
	seen chan struct{}
}

func (h *kaSeen) HandleKeepAlive(*Session) { h.once.Do(func() { close(h.seen) }) }

// slowTLSPeer is an msrps peer that answers every SEND 200; the handshake of the first connection it accepts
// waits for delay, so other Connects to it come while that one is being dialled. It counts the connections.
func slowTLSPeer(t *testing.T, srv *tls.Config, delay time.Duration) (port int, accepted *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	t.Cleanup(func() { ln.Close(); close(stop) })
	accepted = new(atomic.Int32)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			n := accepted.Add(1)
			go func() {
				defer nc.Close()
				if n == 1 {
					select {
					case <-time.After(delay):
					case <-stop: // the test is over: no goroutine outlives it
						return
					}
				}
				tc := tls.Server(nc, srv)
				if tc.Handshake() != nil {
					return
				}
				rd := NewReader(tc, Limits{})
				for {
					m, err := rd.ReadMessage()
					if err != nil {
						return
					}
					if m.Method == "SEND" {
						answerOK(tc, m)
					}
				}
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port, accepted
}

// connectAsync makes a session of e whose peer is session id of msrps://127.0.0.1:port and connects it within
// timeout, in the background.
func connectAsync(e *Endpoint, port int, id string, timeout time.Duration) <-chan error {
	done := make(chan error, 1)
	s := e.NewSession(newRec())
	s.SetPeerPath([]URI{{Secure: true, Host: "127.0.0.1", Port: port, SessionID: id, Transport: "tcp"}})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		done <- s.Connect(ctx)
	}()
	return done
}

// Sessions set up at once to one peer share one connection from the start (RFC 4975 §5.4): Connects that come
// while it is being dialled wait for it instead of dialling their own.
func TestEndpointConcurrentConnectsDialOnce(t *testing.T) {
	srv, cli := selfSigned(t)
	port, accepted := slowTLSPeer(t, srv, 200*time.Millisecond)
	e := newEP(t, Config{ClientTLSConfig: cli}, false)
	const n = 20
	var dones []<-chan error
	for i := range n {
		dones = append(dones, connectAsync(e, port, fmt.Sprintf("s%d", i), waitFor))
	}
	for _, d := range dones {
		if err := recv(t, d, "Connect"); err != nil {
			t.Fatal(err)
		}
	}
	if got := accepted.Load(); got != 1 || e.NumConns() != 1 {
		t.Fatalf("%d Connects at once to one peer opened %d connections (%d kept), want 1", n, got, e.NumConns())
	}
}

// A Connect waiting for another's dial dials itself when that caller gives up (its context ends); Connects at
// once to a closed port all fail with the refusal, none is left waiting.
func TestEndpointConnectWaitingForAnotherDial(t *testing.T) {
	srv, cli := selfSigned(t)
	port, accepted := slowTLSPeer(t, srv, time.Second)
	e := newEP(t, Config{ClientTLSConfig: cli}, false)
	first := connectAsync(e, port, "impatient", 100*time.Millisecond)
	time.Sleep(20 * time.Millisecond) // the first dial is under way
	second := connectAsync(e, port, "patient", waitFor)
	if err := recv(t, first, "first Connect"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("first Connect: %v, want its deadline", err)
	}
	if err := recv(t, second, "second Connect"); err != nil {
		t.Fatalf("second Connect after the first gave up: %v", err)
	}
	if got := accepted.Load(); got != 2 {
		t.Fatalf("%d connections, want 2: the given-up dial and the second's own", got)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	var dones []<-chan error
	for i := range 5 {
		dones = append(dones, connectAsync(e, closed, fmt.Sprintf("r%d", i), waitFor))
	}
	for _, d := range dones {
		if err := recv(t, d, "Connect to a closed port"); err == nil || !strings.Contains(err.Error(), "refused") {
			t.Fatalf("Connect to a closed port: %v, want connection refused", err)
		}
	}
}

// A peer that answers the binding SEND and then stops reading, keeping its TCP connection open (zero window):
// the writer goroutine blocks in nc.Write. The Send must still end (408 or a connection error) in bounded time,
// not hang until the kernel gives up (never, while the peer ACKs zero-window probes).
func TestPeerNotReadingEndsSend(t *testing.T) {
	ln := peerStopsReading(t)
	const timeout = 100 * time.Millisecond
	ea := newEP(t, Config{TransactionTimeout: timeout, ChunkSize: 1 << 20}, false)
	a := connectTo(t, ea, ln, "peer")
	res := make(chan SendResult, 1)
	body := make([]byte, 32<<20) // far beyond both socket buffers
	if err := a.Send(&Outgoing{ContentType: "text/plain", Body: body}, func(r SendResult) { res <- r }); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-res:
		if r.Err == nil && r.StatusCode == 200 {
			t.Fatalf("Send to a peer that reads nothing ended %+v", r)
		}
	case <-time.After(50 * timeout):
		t.Fatalf("Send still pending %v after the peer stopped reading (TransactionTimeout %v): the writer is blocked in Write with no deadline", 50*timeout, timeout)
	}
}

// The active side (it dialled the connection) closes its session from HandleMessage and returns 200: the message
// was accepted, so the peer must get that 200 (Failure-Report yes: RFC 4975 §7.1.1/§7.2). Closing the dialled
// connection at once when its last session leaves drops the response, and the peer's Send fails with ErrConnLost
// although the message was delivered.
func TestCloseInHandlerOnDialledConnKeepsResponse(t *testing.T) {
	ea := newEP(t, Config{}, false)
	eb := newEP(t, Config{}, false)
	ha := newRec()
	ha.onMsg = func(s *Session, m *Incoming) int { s.Close(); return 200 }
	_, b := pair(t, ea, eb, ha, newRec())
	r := sendWait(t, b, &Outgoing{ContentType: "text/plain", Body: []byte("last words")})
	recv(t, ha.msgs, "message delivered at a")
	if r.StatusCode != 200 || r.Err != nil {
		t.Fatalf("peer's Send ended %+v (err %v), want the 200 HandleMessage returned", r, r.Err)
	}
}

// peerStopsReading listens for one MSRP connection whose peer answers the binding SEND and then reads nothing
// more, with a small receive buffer, keeping the connection open until the test ends.
func peerStopsReading(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	t.Cleanup(func() {
		close(stop)
		ln.Close()
	})
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		nc.(*net.TCPConn).SetReadBuffer(4096)
		m, err := NewReader(nc, Limits{}).ReadMessage()
		if err != nil {
			return
		}
		answerOK(nc, m)
		<-stop // never reads again
	}()
	return ln
}

// A lone CR in a request's To-Path userinfo is refused, not echoed into the response's From-Path, where a
// CR-splitting parser on a relay would see an injected header line (RFC 4975 §9: hval = utf8text).
func TestToPathWithBareCRNotEchoed(t *testing.T) {
	e := newEP(t, Config{}, false)
	s := e.NewSession(newRec())
	to := s.LocalURI()
	to.User = "a\rX-Injected:1"
	p := dialRaw(t, e)
	p.write(fmt.Sprintf("MSRP tx000001 SEND\nTo-Path: %s\nFrom-Path: msrp://127.0.0.1:9/peer;tcp\nMessage-ID: m1\n-------tx000001$\n", to))
	p.nc.SetReadDeadline(time.Now().Add(waitFor))
	var got []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(got, []byte("-------tx000001")) {
		n, err := p.nc.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
	}
	if i := bytes.Index(got, []byte("\rX-Injected")); i >= 0 {
		t.Fatalf("response carries a bare CR in a header line:\n%q", got)
	}
}

// RFC 4975 §6/§7.3 (SPEC §4: a request to an unknown session gets 481): a To-Path whose scheme is not the
// session's names no session of ours. TestEndpointRequestNotForOurSession sends its wrong-scheme request to an
// msrps session over plain TCP, which the "msrps over a connection without TLS" check refuses first, so the
// scheme comparison itself is never exercised. Here the session is plain msrp, the connection plain TCP, and
// only the To-Path says msrps: the scheme check alone must answer 481.
func TestToPathSchemeMismatchIs481(t *testing.T) {
	e := newEP(t, Config{}, false)
	h := newRec()
	s := e.NewSession(h)
	if s.LocalURI().Secure {
		t.Fatalf("session URI %v, want msrp", s.LocalURI())
	}
	secure := s.LocalURI()
	secure.Secure = true
	p := dialRaw(t, e)
	p.write(fmt.Sprintf("MSRP tx000001 SEND\nTo-Path: %s\nFrom-Path: msrp://127.0.0.1:9/peer;tcp\nMessage-ID: m1\nByte-Range: 1-6/6\nContent-Type: text/plain\n\nsecret\n-------tx000001$\n", secure))
	p.expect("tx000001", 481)
	noDelivery(t, h, "msrps To-Path for an msrp session")
	select {
	case <-s.Bound():
		t.Fatal("msrps To-Path for an msrp session: the session bound")
	default:
	}
}

// A message refused 413 mid-way keeps getting 413 for its later chunks (reassembler.refuse keeps a refused
// entry: RFC 4975 §10.5 / §7.1.1, the peer must stop, and a chunk it still sends is no fresh start).
// TestEndpointOversizeChunkEndsItsMessage checks this with MaxPartial 1, where a later chunk gets 413 anyway
// for want of a partial slot, so dropping the refused entry goes unnoticed. Here MaxPartial is the default:
// only the refused entry can answer 413 to the message's later '+' and '$' chunks.
func TestRefusedMessageLaterChunksGet413(t *testing.T) {
	eb := newEP(t, Config{MaxMessageSize: 100}, false)
	hb := newRec()
	b := eb.NewSession(hb)
	to := b.LocalURI().String()
	p := dialRaw(t, eb)
	chunk := func(tid, mid, br, body string, flag byte) { p.sendChunk(to, tid, mid, br, body, flag) }
	chunk("big00001", "big", "1-10/*", strings.Repeat("a", 10), '+')
	p.expect("big00001", 200)
	chunk("big00002", "big", "11-20/500", strings.Repeat("b", 10), '+') // the total shows it: 500 over 100
	p.expect("big00002", 413)
	// The later chunks stay within max size themselves: only the refused entry says 413.
	chunk("big00003", "big", "21-30/*", strings.Repeat("c", 10), '+')
	p.expect("big00003", 413)
	chunk("big00004", "big", "31-40/*", strings.Repeat("d", 10), '$')
	p.expect("big00004", 413)
	noDelivery(t, hb, "the refused message")
}

// A first chunk over MaxChunkBytes, refused 413 by the reader before any chunk of its message was kept, ends its
// message as the reassembler's 413 does: its later chunks get 413 too, and none of them starts a partial message
// that would hold the MaxPartial slot (refusing the peer's next message) until it expires.
func TestEndpointOversizeFirstChunkEndsItsMessage(t *testing.T) {
	eb := newEP(t, Config{MaxMessageSize: 1000, MaxPartial: 1, Limits: Limits{MaxChunkBytes: 64}}, false)
	hb := newRec()
	b := eb.NewSession(hb)
	to := b.LocalURI().String()
	p := dialRaw(t, eb)
	chunk := func(tid, mid, br, body string, flag byte) { p.sendChunk(to, tid, mid, br, body, flag) }
	p.write(fmt.Sprintf("MSRP bind0001 SEND\nTo-Path: %s\nFrom-Path: msrp://127.0.0.1:9/peer1;tcp\nMessage-ID: m0\n-------bind0001$\n", to))
	p.expect("bind0001", 200)
	chunk("big00001", "big", "1-*/*", strings.Repeat("a", 100), '+')
	p.expect("big00001", 413)
	chunk("big00002", "big", "101-110/*", strings.Repeat("b", 10), '+')
	p.expect("big00002", 413)
	chunk("next0001", "next", "1-3/6", "abc", '+')
	p.expect("next0001", 200)
	chunk("next0002", "next", "4-6/6", "def", '$')
	p.expect("next0002", 200)
	if m := recv(t, hb.msgs, "the next message"); string(m.Body) != "abcdef" {
		t.Fatalf("delivered %q (message %s), want the next message", m.Body, m.MessageID)
	}
}

// A message refused 413 for want of a MaxPartial slot is refused as a whole: a chunk of it that comes once a slot
// is free again gets 413 too, instead of starting a partial message that can never complete (its first bytes
// were refused) and holds the slot, refusing the peer's next message, until it expires.
func TestEndpointMaxPartialRefusalEndsItsMessage(t *testing.T) {
	eb := newEP(t, Config{MaxPartial: 1}, false)
	hb := newRec()
	b := eb.NewSession(hb)
	to := b.LocalURI().String()
	p := dialRaw(t, eb)
	chunk := func(tid, mid, br, body string, flag byte) { p.sendChunk(to, tid, mid, br, body, flag) }
	chunk("one00001", "one", "1-3/6", "abc", '+')
	p.expect("one00001", 200)
	chunk("two00001", "two", "1-3/9", "ABC", '+') // no slot: refused
	p.expect("two00001", 413)
	chunk("one00002", "one", "4-6/6", "def", '$') // frees the slot
	p.expect("one00002", 200)
	if m := recv(t, hb.msgs, "the first message"); string(m.Body) != "abcdef" {
		t.Fatalf("delivered %q, want abcdef", m.Body)
	}
	chunk("two00002", "two", "4-6/9", "DEF", '+')
	p.expect("two00002", 413)
	chunk("thr00001", "three", "1-3/6", "xyz", '+')
	p.expect("thr00001", 200)
	chunk("thr00002", "three", "4-6/6", "XYZ", '$')
	p.expect("thr00002", 200)
	if m := recv(t, hb.msgs, "the third message"); string(m.Body) != "xyzXYZ" {
		t.Fatalf("delivered %q (message %s), want the third message", m.Body, m.MessageID)
	}
}
