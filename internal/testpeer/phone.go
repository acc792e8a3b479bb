package testpeer

import (
	"context"
	"crypto/tls"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Phone is a page-mode user agent: it only sends and receives SIP MESSAGEs (RFC 3428). It listens for UDP and
// TCP on one ephemeral 127.0.0.1 port (PhoneConfig can change that), records every MESSAGE it receives and
// answers it with a settable code.
type Phone struct {
	// URI is the phone's own address of record, sip:USER@127.0.0.1:PORT; MESSAGEs sent to it reach it.
	URI string
	// Addr is the host:port the phone listens on (UDP and TCP, or TLS).
	Addr string

	t        testing.TB
	cfg      PhoneConfig
	client   *sipgo.Client
	inbox    chan *sip.Request
	answer   atomic.Int32 // final response to received MESSAGEs; 0 = never answer
	received atomic.Int64

	mu  sync.Mutex
	all []*sip.Request
}

// PhoneConfig is what NewPhoneWith can change about a phone; the zero value is NewPhone's phone.
type PhoneConfig struct {
	// Host is the loopback address the phone listens on and sends from, for tests about source addresses
	// (127.0.0.2, ...); "" is 127.0.0.1.
	Host string
	// TLS, when not nil, makes the phone listen for SIP over TLS only, with this server configuration; its
	// URI then carries ;transport=tls.
	TLS *tls.Config
	// ClientTLS is the configuration of the TLS connections the phone makes (nil: sipgo's default).
	ClientTLS *tls.Config
	// OnMessage, when not nil, answers every MESSAGE the phone receives in place of the SetAnswer code, and
	// says whether it counts as received (Recv, Received, Messages). A challenging phone is one use.
	OnMessage func(req *sip.Request, tx sip.ServerTransaction) (received bool)
}

// NewPhone starts a phone for user on an ephemeral loopback port; it answers 200 until SetAnswer.
func NewPhone(t testing.TB, user string) *Phone {
	t.Helper()
	return NewPhoneWith(t, user, PhoneConfig{})
}

// NewPhoneWith is NewPhone with the changes cfg asks for.
func NewPhoneWith(t testing.TB, user string, cfg PhoneConfig) *Phone {
	t.Helper()
	p := &Phone{t: t, cfg: cfg, inbox: make(chan *sip.Request, 4096)}
	p.answer.Store(200)
	ua := uaConfig{host: cfg.Host, serverTLS: cfg.TLS, clientTLS: cfg.ClientTLS}
	newUA(t, "phone-"+user, ua, func(srv *sipgo.Server, client *sipgo.Client, addr string) {
		p.Addr, p.URI, p.client = addr, "sip:"+user+"@"+addr, client
		if cfg.TLS != nil {
			p.URI += ";transport=tls"
		}
		srv.OnMessage(p.onMessage)
	})
	return p
}

func (p *Phone) onMessage(req *sip.Request, tx sip.ServerTransaction) {
	if p.cfg.OnMessage != nil {
		if p.cfg.OnMessage(req, tx) {
			p.record(req)
		}
		return
	}
	// Recorded before the answer: a sender that waits for the answer before its next MESSAGE (RFC 3428 §8)
	// then finds them in wire order, although every request has a handler goroutine of its own.
	p.record(req)
	if code := int(p.answer.Load()); code > 0 {
		tx.Respond(sip.NewResponseFromRequest(req, code, Reason(code), nil))
	}
}

func (p *Phone) record(req *sip.Request) {
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

// Inbox is the queue of received MESSAGEs that Recv reads, for a test that waits on several things at once.
func (p *Phone) Inbox() <-chan *sip.Request { return p.inbox }

// SIPClient is the phone's sipgo client, for requests NewMessage and Do do not cover (a digest answer, an
// OPTIONS).
func (p *Phone) SIPClient() *sipgo.Client { return p.client }

// NewMessage builds a MESSAGE from the phone to toURI (Request-URI and To), with a fresh From tag, the given
// Content-Type (none when empty), extra headers and body. It fails the test when toURI does not parse.
func (p *Phone) NewMessage(toURI, ctype, body string, extra ...sip.Header) *sip.Request {
	p.t.Helper()
	req, err := p.newMessage(toURI, ctype, body, extra...)
	if err != nil {
		p.t.Fatal(err)
	}
	return req
}

func (p *Phone) newMessage(toURI, ctype, body string, extra ...sip.Header) (*sip.Request, error) {
	req, err := NewRequest(sip.MESSAGE, p.URI, toURI, ctype, []byte(body))
	if err != nil {
		return nil, err
	}
	for _, h := range extra {
		req.AppendHeader(h)
	}
	return req, nil
}

// TrySend sends a MESSAGE to toURI through the gateway at gwAddr (host:port, UDP) and returns its final
// response. It never touches the test, so any goroutine may call it.
func (p *Phone) TrySend(ctx context.Context, gwAddr, toURI, ctype, body string, extra ...sip.Header) (*sip.Response, error) {
	req, err := p.newMessage(toURI, ctype, body, extra...)
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
func (p *Phone) TryRecv(d time.Duration) (*sip.Request, bool) { return tryRecv(p.inbox, d) }

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
