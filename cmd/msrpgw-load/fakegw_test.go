package main

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/msrp"
	"github.com/msrpgw/msrpgw/msrp/sdp"
)

// fault is what the fake gateway does with the n-th message (0-based, per session and direction).
type fault int

const (
	pass   fault = iota
	drop         // answer the request, never deliver
	dup          // deliver twice
	hold         // deliver after the next one (a swap)
	late         // deliver when the session ends, before answering its BYE
	refuse       // deliver, and answer with a failure (500) all the same
	slow         // answer at once, deliver slowDelivery later
	echo         // deliver at once, and again slowDelivery later: a late duplicate
)

// slowDelivery is how long the slow fault holds a message back: well inside the tests' drain.
const slowDelivery = 300 * time.Millisecond

// faultPlan makes every ten messages lose one, duplicate one and swap one pair: per ten, 1 lost, 1
// duplicated, 1 reordered (the held one arrives after its successor).
func faultPlan(n int64) fault {
	switch n % 10 {
	case 2:
		return hold
	case 5:
		return drop
	case 7:
		return dup
	}
	return pass
}

// fakeGW is a deliberately faulty gateway with the reference's routing (INVITE key $fu:$tu, MESSAGE key
// $tu:$fu, MESSAGE-side coordinates from the INVITE). Session first only: it answers a=setup:passive.
type fakeGW struct {
	t    *testing.T
	ua   *sipUA
	ep   *msrp.Endpoint
	dua  *sipgo.DialogUA
	plan func(n int64) fault
	// answerDelay, when set (setAnswerDelay), is how long the n-th request (per session and direction) waits
	// for its answer. Atomic: a test sets it while the fake serves, and what orders the setting before the
	// requests it delays is a UDP datagram, which the race detector does not see.
	answerDelay atomic.Pointer[func(n int64) time.Duration]

	slow sync.WaitGroup // slow deliveries under way

	mu     sync.Mutex
	byKey  map[string]*fakeSess
	byCall map[string]*fakeSess
}

type fakeSess struct {
	g              *fakeGW
	from, to, ruri string
	ms             *msrp.Session
	uas            *sipgo.DialogServerSession

	mu        sync.Mutex
	nIn, nOut int64
	heldIn    []byte   // MESSAGE body held for a swap
	heldOut   []byte   // SEND body held for a swap
	lateIn    [][]byte // MESSAGE bodies held until the BYE
	lateOut   [][]byte // SEND bodies held until the BYE
}

func (g *fakeGW) setAnswerDelay(d func(n int64) time.Duration) { g.answerDelay.Store(&d) }

func newFakeGW(t *testing.T, plan func(n int64) fault) *fakeGW {
	g := &fakeGW{t: t, plan: plan, byKey: map[string]*fakeSess{}, byCall: map[string]*fakeSess{}}
	g.ep = msrp.NewEndpoint(msrp.Config{})
	if _, err := g.ep.Listen("tcp", "127.0.0.1:0", false); err != nil {
		t.Fatal(err)
	}
	ua, err := newSIPUA("fake-gw", func(u *sipUA) {
		// Set before the UA serves: handlers read it, and packets make no happens-before edge for the race
		// detector (setting it after newSIPUA returned was a data race).
		g.ua = u
		var contact sip.Uri
		sip.ParseUri("sip:gw@"+u.addr, &contact)
		g.dua = &sipgo.DialogUA{Client: u.client, ContactHDR: sip.ContactHeader{Address: contact}}
		u.srv.OnInvite(g.onInvite)
		u.srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) {
			if s := g.call(req); s != nil {
				s.uas.ReadAck(req, tx)
			}
		})
		u.srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
			s := g.call(req)
			if s == nil {
				tx.Respond(sip.NewResponseFromRequest(req, 481, reason(481), nil))
				return
			}
			s.deliverLate()
			tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
			s.ms.Close()
		})
		u.srv.OnMessage(g.onMessage)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.slow.Wait(); ua.close(); g.ep.Close() })
	return g
}

func (g *fakeGW) call(req *sip.Request) *fakeSess {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.byCall[req.CallID().Value()]
}

func (g *fakeGW) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	offer, err := sdp.Parse(req.Body())
	if err != nil {
		tx.Respond(sip.NewResponseFromRequest(req, 488, reason(488), nil))
		return
	}
	path, err := msrp.ParsePath(strings.Join(offer.Path, " "))
	if err != nil {
		tx.Respond(sip.NewResponseFromRequest(req, 488, reason(488), nil))
		return
	}
	s := &fakeSess{g: g, from: req.From().Address.String(), to: req.To().Address.String(), ruri: req.Recipient.String()}
	s.ms = g.ep.NewSession(s)
	s.ms.SetPeerPath(path)
	dlg, err := g.dua.ReadInvite(req, tx)
	if err != nil {
		g.t.Errorf("fake gateway ReadInvite: %v", err)
		return
	}
	s.uas = dlg
	g.mu.Lock()
	g.byKey[s.from+":"+s.to] = s
	g.byCall[req.CallID().Value()] = s
	g.mu.Unlock()
	u := s.ms.LocalURI()
	m := &sdp.Media{Host: u.Host, Port: u.Port, Path: []string{u.String()}, AcceptTypes: []string{"text/plain"}, Setup: "passive"}
	dlg.RespondSDP(m.Marshal(1, 1))
}

// onMessage relays a phone's MESSAGE as SENDs, faults applied.
func (g *fakeGW) onMessage(req *sip.Request, tx sip.ServerTransaction) {
	key := req.To().Address.String() + ":" + req.From().Address.String()
	g.mu.Lock()
	s := g.byKey[key]
	g.mu.Unlock()
	if s == nil {
		tx.Respond(sip.NewResponseFromRequest(req, 404, reason(404), nil))
		return
	}
	body := append([]byte(nil), req.Body()...)
	s.mu.Lock()
	n := s.nIn
	s.nIn++
	var out [][]byte
	switch g.plan(n) {
	case pass:
		out = append(out, body)
		if s.heldIn != nil {
			out, s.heldIn = append(out, s.heldIn), nil
		}
	case drop:
	case dup:
		out = append(out, body, body)
	case hold:
		s.heldIn = body
	case late:
		s.lateIn = append(s.lateIn, body)
	case refuse:
		out = append(out, body)
	case slow, echo:
		if g.plan(n) == echo {
			out = append(out, body)
		}
		s.g.slowly(func() {
			if err := s.ms.Send(&msrp.Outgoing{ContentType: "text/plain", Body: body}, nil); err != nil {
				g.t.Errorf("fake gateway slow SEND: %v", err)
			}
		})
	}
	for _, b := range out {
		if err := s.ms.Send(&msrp.Outgoing{ContentType: "text/plain", Body: b}, nil); err != nil {
			g.t.Errorf("fake gateway SEND: %v", err)
		}
	}
	s.mu.Unlock()
	if d := g.answerDelay.Load(); d != nil {
		time.Sleep((*d)(n))
	}
	code := 200
	if g.plan(n) == refuse {
		code = 500
	}
	tx.Respond(sip.NewResponseFromRequest(req, code, reason(code), nil))
}

// slowly runs deliver slowDelivery from now, on a goroutine the test waits for.
func (g *fakeGW) slowly(deliver func()) {
	g.slow.Add(1)
	go func() {
		defer g.slow.Done()
		time.Sleep(slowDelivery)
		deliver()
	}()
}

// HandleMessage relays a client's SEND as MESSAGEs, faults applied, each waiting for its answer so the
// phone side sees them in the order sent.
func (s *fakeSess) HandleMessage(_ *msrp.Session, m *msrp.Incoming) int {
	body := append([]byte(nil), m.Body...)
	s.mu.Lock()
	n := s.nOut
	s.nOut++
	var out [][]byte
	switch s.g.plan(n) {
	case pass:
		out = append(out, body)
		if s.heldOut != nil {
			out, s.heldOut = append(out, s.heldOut), nil
		}
	case drop:
	case dup:
		out = append(out, body, body)
	case hold:
		s.heldOut = body
	case late:
		s.lateOut = append(s.lateOut, body)
	case refuse:
		out = append(out, body)
	case slow:
		s.g.slowly(func() { s.message(body) })
	case echo:
		out = append(out, body)
		s.g.slowly(func() { s.message(body) })
	}
	s.mu.Unlock()
	for _, b := range out {
		s.message(b)
	}
	if d := s.g.answerDelay.Load(); d != nil {
		time.Sleep((*d)(n))
	}
	if s.g.plan(n) == refuse {
		return 500
	}
	return 200
}

// deliverLate delivers what the late fault held, as the session ends.
func (s *fakeSess) deliverLate() {
	s.mu.Lock()
	in, out := s.lateIn, s.lateOut
	s.lateIn, s.lateOut = nil, nil
	s.mu.Unlock()
	for _, b := range in {
		if err := s.ms.Send(&msrp.Outgoing{ContentType: "text/plain", Body: b}, nil); err != nil {
			s.g.t.Errorf("fake gateway late SEND: %v", err)
		}
	}
	if len(in) > 0 {
		time.Sleep(100 * time.Millisecond) // the SENDs reach the client before the BYE's answer
	}
	for _, b := range out {
		s.message(b) // answered before the BYE is
	}
}

func (s *fakeSess) message(body []byte) {
	var ruri, from, to sip.Uri
	sip.ParseUri(s.ruri, &ruri)
	sip.ParseUri(s.from, &from)
	sip.ParseUri(s.to, &to)
	req := sip.NewRequest(sip.MESSAGE, ruri)
	fh := &sip.FromHeader{Address: from, Params: sip.NewParams()}
	fh.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(fh)
	req.AppendHeader(&sip.ToHeader{Address: to, Params: sip.NewParams()})
	req.AppendHeader(sip.NewHeader("Content-Type", "text/plain"))
	req.SetBody(body)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.g.ua.client.Do(ctx, req); err != nil {
		s.g.t.Errorf("fake gateway MESSAGE: %v", err)
	}
}

func (s *fakeSess) HandleReport(*msrp.Session, *msrp.Report) {}
func (s *fakeSess) HandleClose(*msrp.Session, error)         {}
