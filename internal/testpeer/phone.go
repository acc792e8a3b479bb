package testpeer

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Phone is a page-mode user agent: it only sends and receives SIP MESSAGEs (RFC 3428). It listens for UDP and
// TCP on one ephemeral 127.0.0.1 port, records every MESSAGE it receives and answers it with a settable code.
type Phone struct {
	// URI is the phone's own address of record, sip:USER@127.0.0.1:PORT; MESSAGEs sent to it reach it.
	URI string
	// Addr is the host:port the phone listens on (UDP and TCP).
	Addr string

	t        testing.TB
	client   *sipgo.Client
	inbox    chan *sip.Request
	answer   atomic.Int32 // final response to received MESSAGEs; 0 = never answer
	received atomic.Int64

	mu  sync.Mutex
	all []*sip.Request
}

// NewPhone starts a phone for user on an ephemeral loopback port; it answers 200 until SetAnswer.
func NewPhone(t testing.TB, user string) *Phone {
	t.Helper()
	p := &Phone{t: t, inbox: make(chan *sip.Request, 4096)}
	p.answer.Store(200)
	newUA(t, "phone-"+user, func(srv *sipgo.Server, client *sipgo.Client, addr string) {
		p.Addr, p.URI, p.client = addr, "sip:"+user+"@"+addr, client
		srv.OnMessage(p.onMessage)
	})
	return p
}

func (p *Phone) onMessage(req *sip.Request, tx sip.ServerTransaction) {
	if code := int(p.answer.Load()); code > 0 {
		tx.Respond(sip.NewResponseFromRequest(req, code, Reason(code), nil))
	}
	p.received.Add(1)
	p.mu.Lock()
	p.all = append(p.all, req)
	p.mu.Unlock()
	select {
	case p.inbox <- req:
	default: // Received still has it; a test that reads the inbox this far behind does not care.
	}
}

// SetAnswer sets the final response to MESSAGEs the phone receives (0: never answer).
func (p *Phone) SetAnswer(code int) { p.answer.Store(int32(code)) }

// Received returns how many MESSAGEs the phone has received.
func (p *Phone) Received() int { return int(p.received.Load()) }

// Messages returns every MESSAGE the phone has received, in arrival order.
func (p *Phone) Messages() []*sip.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*sip.Request(nil), p.all...)
}

// NewMessage builds a MESSAGE from the phone to toURI (Request-URI and To), with a fresh From tag, the given
// Content-Type (none when empty), extra headers and body.
func (p *Phone) NewMessage(toURI, ctype, body string, extra ...sip.Header) (*sip.Request, error) {
	var ruri, from sip.Uri
	if err := sip.ParseUri(toURI, &ruri); err != nil {
		return nil, fmt.Errorf("testpeer: MESSAGE to %q: %w", toURI, err)
	}
	if err := sip.ParseUri(p.URI, &from); err != nil {
		return nil, fmt.Errorf("testpeer: phone URI %q: %w", p.URI, err)
	}
	req := sip.NewRequest(sip.MESSAGE, ruri)
	fh := &sip.FromHeader{Address: from, Params: sip.NewParams()}
	fh.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(fh)
	req.AppendHeader(&sip.ToHeader{Address: ruri, Params: sip.NewParams()})
	if ctype != "" {
		req.AppendHeader(sip.NewHeader("Content-Type", ctype))
	}
	for _, h := range extra {
		req.AppendHeader(h)
	}
	req.SetBody([]byte(body))
	return req, nil
}

// TrySend sends a MESSAGE to toURI through the gateway at gwAddr (host:port, UDP) and returns its final
// response. It never touches the test, so any goroutine may call it.
func (p *Phone) TrySend(ctx context.Context, gwAddr, toURI, ctype, body string, extra ...sip.Header) (*sip.Response, error) {
	req, err := p.NewMessage(toURI, ctype, body, extra...)
	if err != nil {
		return nil, err
	}
	return p.Do(ctx, gwAddr, req)
}

// Do sends a request built by NewMessage (perhaps changed) to gwAddr and returns its final response.
func (p *Phone) Do(ctx context.Context, gwAddr string, req *sip.Request) (*sip.Response, error) {
	req.SetDestination(gwAddr)
	res, err := p.client.Do(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("testpeer: %s to %s via %s: %w", req.Method, req.Recipient.String(), gwAddr, err)
	}
	return res, nil
}

// Send is TrySend that fails the test on a transport error or timeout (WaitFor). Call it from the test's
// goroutine.
func (p *Phone) Send(gwAddr, toURI, ctype, body string, extra ...sip.Header) *sip.Response {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitFor)
	defer cancel()
	res, err := p.TrySend(ctx, gwAddr, toURI, ctype, body, extra...)
	if err != nil {
		p.t.Fatal(err)
	}
	return res
}

// TryRecv waits up to d for the next MESSAGE the phone receives.
func (p *Phone) TryRecv(d time.Duration) (*sip.Request, bool) {
	select { // what is already there first: with d == 0 the timer would race the inbox
	case r := <-p.inbox:
		return r, true
	default:
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case r := <-p.inbox:
		return r, true
	case <-t.C:
		return nil, false
	}
}

// Recv waits for the next MESSAGE the phone receives and fails the test after WaitFor.
func (p *Phone) Recv() *sip.Request {
	p.t.Helper()
	r, ok := p.TryRecv(WaitFor)
	if !ok {
		p.t.Fatalf("testpeer: phone %s received no MESSAGE within %s", p.URI, WaitFor)
	}
	return r
}

// Quiet fails the test if a MESSAGE arrives within d.
func (p *Phone) Quiet(d time.Duration) {
	p.t.Helper()
	if r, ok := p.TryRecv(d); ok {
		p.t.Fatalf("testpeer: phone %s received an unexpected MESSAGE: %q", p.URI, r.Body())
	}
}
