package gateway

import (
	"bufio"
	"bytes"
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

	"github.com/msrpgw/msrpgw/internal/testpeer"
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

// readSIPRequest reads one request from a SIP stream: the head up to the blank line, then Content-Length
// bytes of body.
func readSIPRequest(r *bufio.Reader) (*sip.Request, error) {
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
	msg, err := sip.ParseMessage(append(head.Bytes(), body...))
	if err != nil {
		return nil, err
	}
	req, ok := msg.(*sip.Request)
	if !ok {
		return nil, fmt.Errorf("not a request: %T", msg)
	}
	return req, nil
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
	const prompt = 3 * time.Second
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
		t.Fatalf("the next MESSAGE did not reach the phone within %s of the connection's close", prompt)
	}
	logs.wait(t, "MESSAGE failed on a transport failure, as 503", map[string]string{"ruri": alice.uri(), "err": ""})
}
