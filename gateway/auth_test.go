package gateway

import (
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/internal/testpeer"
	"github.com/msrpgw/msrpgw/msrp"
)

// challenger is a UA that answers every INVITE or MESSAGE with a digest challenge until it sees credentials
// (or always, with always set), and records what it got. With proxy set it first challenges as a proxy
// would (407, realm proxy-test) until the request carries a Proxy-Authorization.
type challenger struct {
	mu     sync.Mutex
	always bool
	code   int  // 401 or 407
	proxy  bool // a 407 of realm proxy-test before code's challenge
	got    []*sip.Request
}

// handle answers req and reports whether it accepted it (200).
func (c *challenger) handle(req *sip.Request, tx sip.ServerTransaction) bool {
	c.mu.Lock()
	c.got = append(c.got, req)
	always, code, proxy := c.always, c.code, c.proxy
	c.mu.Unlock()
	challenge := func(code int, realm string) {
		hdr, _ := challengeHeaders(code)
		res := sip.NewResponseFromRequest(req, code, "Authenticate", nil)
		res.AppendHeader(sip.NewHeader(hdr, `Digest realm="`+realm+`", nonce="abc123", algorithm=MD5, qop="auth"`))
		tx.Respond(res)
	}
	if proxy && req.GetHeader("Proxy-Authorization") == nil {
		challenge(407, "proxy-test")
		return false
	}
	if _, answer := challengeHeaders(code); always || req.GetHeader(answer) == nil {
		challenge(code, "gw-test")
		return false
	}
	tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	return true
}

func (c *challenger) requests() []*sip.Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*sip.Request(nil), c.got...)
}

var testCredentials = []config.Credential{
	{Realm: "elsewhere", Username: "wrong", Password: "nope"},
	{Realm: "gw-test", Username: "gwuser", Password: "secret"},
}

// An INVITE challenged again after our answer is not answered a second time: the setup fails after exactly
// two INVITEs, the second with the credential of the challenge's realm. The MESSAGE gets 403 (SPEC §5's
// table); setup-failed carries the INVITE's own response, as the reference's event does.
func TestInviteChallengeAnsweredOnce(t *testing.T) {
	for _, code := range []int{401, 407} {
		t.Run(itoa(code), func(t *testing.T) {
			h := newHarness(t, func(c *config.Config) {
				c.SIP.Credentials = testCredentials
				c.Gateway.Message.Reply = "wait"
			})
			alice := testpeer.NewPhone(t, "auth-alice")
			ch := &challenger{always: true, code: code}
			addr := testpeer.NewUA(t, "challenger", func(srv *sipgo.Server, _ *sipgo.Client, _ string) {
				srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) { ch.handle(req, tx) })
			})
			res := alice.Send(h.udp(), "sip:bob@"+addr, "text/plain", "hi")
			if res.StatusCode != 403 {
				t.Fatalf("MESSAGE answered %d %s, want 403", res.StatusCode, res.Reason)
			}
			e := h.events.waitKind(t, event.SetupFailed)
			if e.Code != code || e.Reason != "Authenticate" {
				t.Fatalf("setup failed with %d %s, want %d Authenticate (the INVITE's response)", e.Code, e.Reason, code)
			}
			if got, want := string(alice.Recv().Body()), "Failed to establish session, error: "+itoa(code)+" Authenticate"; got != want {
				t.Fatalf("notification %q, want %q", got, want)
			}
			got := ch.requests()
			if len(got) != 2 {
				t.Fatalf("%d INVITEs, want 2 (one answer per challenge, no loop)", len(got))
			}
			_, answer := challengeHeaders(code)
			a := got[1].GetHeader(answer)
			if a == nil || !strings.Contains(a.Value(), `username="gwuser"`) || !strings.Contains(a.Value(), `realm="gw-test"`) {
				t.Fatalf("second INVITE %s: %v", answer, a)
			}
			if got[0].CallID().Value() != got[1].CallID().Value() || got[1].CSeq().SeqNo != got[0].CSeq().SeqNo+1 {
				t.Fatal("the answer must keep the Call-ID and advance the CSeq")
			}
		})
	}
}

// A MESSAGE to the page-mode side challenged once is answered once and delivered.
func TestMessageChallengeAnswered(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.SIP.Credentials = testCredentials })
	ch := &challenger{code: 407}
	alice := challengedPhone(t, ch)
	bob := testpeer.NewClient(t, "auth-bob")
	alice.Send(h.udp(), bob.URI, "text/plain", "hi")
	cs := bob.WaitInvite()
	cs.Recv()
	if r := cs.Send("text/plain", "back"); r.StatusCode != 200 {
		t.Fatalf("SEND: %+v", r)
	}
	if m := alice.Recv(); string(m.Body()) != "back" {
		t.Fatalf("got %q", m.Body())
	}
	if e := h.events.waitKind(t, event.MessageDelivered); e.Direction != event.ToSIP && e.Direction != event.ToMSRP {
		t.Fatalf("event %+v", e)
	}
	if n := len(ch.requests()); n != 2 {
		t.Fatalf("%d MESSAGEs, want 2", n)
	}
}

// A generated MESSAGE that fits in UDP when first sent, but not once it carries the answer to a challenge,
// goes over TCP the second time (SPEC §4, RFC 3261 §18.1.1): the credentials add some 200 bytes, and a
// request over 1300 bytes is never sent over UDP. The message is delivered, and reported so.
func TestMessageChallengeAnswerOffUDPWhenLarge(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.SIP.Credentials = testCredentials })
	ch := &challenger{code: 407}
	alice := challengedPhone(t, ch)
	bob := testpeer.NewClient(t, "auth-bob")
	cs := bob.Call(h.udp(), alice.URI, "actpass")
	send := func(body string) (first, answer *sip.Request) {
		t.Helper()
		r := cs.SendOut(&msrp.Outgoing{ContentType: "text/plain", Body: []byte(body), SuccessReport: true})
		if r.StatusCode != 200 {
			t.Fatalf("SEND: %+v", r)
		}
		alice.Recv()
		if rep := cs.Report(); rep.StatusCode != 200 {
			t.Fatalf("REPORT %d %s, want the success report", rep.StatusCode, rep.Comment)
		}
		got := ch.requests()
		if len(got) < 2 {
			t.Fatalf("%d MESSAGEs, want the challenged one and its answer", len(got))
		}
		return got[len(got)-2], got[len(got)-1]
	}
	// A short message measures the session's MESSAGEs; the next is made 1150 bytes on the wire, which fits in
	// UDP, and its answer some 200 bytes more, which does not.
	probe, _ := send("probe")
	body := strings.Repeat("x", 1150-len(probe.String())+len("probe"))
	first, answer := send(body)
	t.Logf("first %d bytes over %s, its answer %d bytes over %s", len(first.String()), first.Transport(), len(answer.String()), answer.Transport())
	if !strings.EqualFold(first.Transport(), "UDP") {
		t.Fatalf("the %d-byte MESSAGE went over %s: the test wants one that fits in UDP", len(first.String()), first.Transport())
	}
	if size := len(answer.String()); size <= 1300 {
		t.Fatalf("the answer to the challenge is %d bytes: the test wants one over 1300", size)
	} else if !strings.EqualFold(answer.Transport(), "TCP") {
		t.Fatalf("the answer to the challenge, %d bytes, went over %s, want TCP", size, answer.Transport())
	}
}

// The same through sipgo's client, for a page-mode user named by a host name, with the gateway listening for
// UDP and TCP on one port as its default configuration does: the answer moved to TCP is not bound to the UDP
// listener's address, which the TCP listener holds too.
func TestMessageChallengeAnswerOffUDPByName(t *testing.T) {
	port := strconv.Itoa(freeSharedPort(t))
	h := newHarness(t, func(c *config.Config) {
		c.SIP.Credentials = testCredentials
		c.SIP.Listen = []config.Listen{{Network: "udp", Addr: "127.0.0.1:" + port}, {Network: "tcp", Addr: "127.0.0.1:" + port}}
		c.SIP.Contact = "sip:127.0.0.1:" + port
	})
	ch := &challenger{code: 407}
	alice := challengedPhone(t, ch)
	bob := testpeer.NewClient(t, "auth-bob")
	_, alicePort, _ := net.SplitHostPort(alice.Addr)
	cs := bob.Call(h.udp(), "sip:auth-alice@localhost:"+alicePort, "actpass")
	r := cs.SendOut(&msrp.Outgoing{ContentType: "text/plain", Body: []byte(strings.Repeat("y", 800)), SuccessReport: true})
	if r.StatusCode != 200 {
		t.Fatalf("SEND: %+v", r)
	}
	if rep := cs.Report(); rep.StatusCode != 200 {
		t.Fatalf("REPORT %d %s, want the success report", rep.StatusCode, rep.Comment)
	}
	got := ch.requests()
	if len(got) != 2 {
		t.Fatalf("%d MESSAGEs, want 2", len(got))
	}
	t.Logf("first %d bytes over %s, its answer %d bytes over %s", len(got[0].String()), got[0].Transport(), len(got[1].String()), got[1].Transport())
	if !strings.EqualFold(got[0].Transport(), "UDP") || !strings.EqualFold(got[1].Transport(), "TCP") {
		t.Fatalf("MESSAGE over %s, its answer over %s: want UDP, then TCP", got[0].Transport(), got[1].Transport())
	}
}

// The same for an INVITE (MESSAGE first): one that fits in UDP when first sent goes over TCP with the answer
// to its challenge once that makes it larger than 1300 bytes.
func TestInviteChallengeAnswerOffUDPWhenLarge(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.SIP.Credentials = testCredentials })
	alice := testpeer.NewPhone(t, "auth-alice")
	ch := &challenger{always: true, code: 407}
	addr := testpeer.NewUA(t, "challenger", func(srv *sipgo.Server, _ *sipgo.Client, _ string) {
		srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) { ch.handle(req, tx) })
	})
	invite := func(user string) (first, answer *sip.Request) {
		t.Helper()
		n := len(ch.requests())
		alice.Send(h.udp(), "sip:"+user+"@"+addr, "text/plain", "hi")
		deadline := time.Now().Add(waitFor)
		for len(ch.requests()) < n+2 {
			if time.Now().After(deadline) {
				t.Fatalf("%d INVITEs for %s, want the challenged one and its answer", len(ch.requests())-n, user)
			}
			time.Sleep(5 * time.Millisecond)
		}
		got := ch.requests()
		return got[n], got[n+1]
	}
	// A short user part measures the INVITE; the Request-URI's user (in the Request-URI and To) then makes
	// the next one 1150 bytes on the wire, which fits in UDP, and its answer some 200 bytes more.
	probe, _ := invite("b")
	first, answer := invite("b" + strings.Repeat("x", (1150-len(probe.String()))/2))
	t.Logf("first %d bytes over %s, its answer %d bytes over %s", len(first.String()), first.Transport(), len(answer.String()), answer.Transport())
	if !strings.EqualFold(first.Transport(), "UDP") || len(first.String()) > 1300 {
		t.Fatalf("the %d-byte INVITE went over %s: the test wants one that fits in UDP", len(first.String()), first.Transport())
	}
	if size := len(answer.String()); size <= 1300 {
		t.Fatalf("the answer to the challenge is %d bytes: the test wants one over 1300", size)
	} else if !strings.EqualFold(answer.Transport(), "TCP") {
		t.Fatalf("the answer to the challenge, %d bytes, went over %s, want TCP", size, answer.Transport())
	}
}

// challengedPhone is a page-mode phone, auth-alice, whose MESSAGEs ch answers: only one carrying the
// answers to its challenges reaches the phone.
func challengedPhone(t *testing.T, ch *challenger) *testpeer.Phone {
	return testpeer.NewPhoneWith(t, "auth-alice", testpeer.PhoneConfig{OnMessage: ch.handle})
}

// The digest uri of our credentials is the Request-URI as it is on the request line, parameters and all (RFC
// 7616 §3.4.6; RFC 3261 §22.4): a server that checks it against the Request-URI, as the gateway's own
// sip.auth does (sameURI), refused credentials made for the URI without its parameters (;user=phone here).
func TestChallengeAnswerDigestURIIsTheRequestURI(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.SIP.Credentials = testCredentials })
	alice := testpeer.NewPhone(t, "auth-alice")
	ch := &challenger{always: true, code: 407}
	addr := testpeer.NewUA(t, "challenger", func(srv *sipgo.Server, _ *sipgo.Client, _ string) {
		srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) { ch.handle(req, tx) })
	})
	alice.Send(h.udp(), "sip:+15551234@"+addr+";user=phone", "text/plain", "hi")
	h.events.waitKind(t, event.SetupFailed)
	got := ch.requests()
	if len(got) != 2 {
		t.Fatalf("%d INVITEs, want 2", len(got))
	}
	a := got[1].GetHeader("Proxy-Authorization")
	if a == nil {
		t.Fatal("the second INVITE has no Proxy-Authorization")
	}
	cred, err := digest.ParseCredentials(a.Value())
	if err != nil {
		t.Fatal(err)
	}
	if ruri := got[1].Recipient.String(); cred.URI != ruri || !sameURI(cred.URI, &got[1].Recipient) {
		t.Fatalf("digest uri %q, want the Request-URI %q", cred.URI, ruri)
	}
}

// A proxy's challenge and then the far end's are two challenges, each answered once (SPEC §8): the third
// request carries both answers, each with its realm's credential, and gets through. The generated MESSAGE
// goes both ways the gateway sends it: to an address (its own UDP client) and to a name (sipgo's).
func TestProxyAndFarEndChallengesAnswered(t *testing.T) {
	creds := append([]config.Credential{{Realm: "proxy-test", Username: "proxyuser", Password: "pp"}}, testCredentials...)
	check := func(t *testing.T, got []*sip.Request) {
		t.Helper()
		if len(got) != 3 {
			t.Fatalf("%d requests, want 3: the first, the answer to the proxy's 407, the answer to the far end's 401", len(got))
		}
		for _, want := range []struct{ hdr, user, realm string }{
			{"Proxy-Authorization", "proxyuser", "proxy-test"},
			{"Authorization", "gwuser", "gw-test"},
		} {
			a := got[2].GetHeader(want.hdr)
			if a == nil || !strings.Contains(a.Value(), `username="`+want.user+`"`) || !strings.Contains(a.Value(), `realm="`+want.realm+`"`) {
				t.Fatalf("third request's %s: %v, want %s's answer", want.hdr, a, want.realm)
			}
		}
		if got[2].CSeq().SeqNo != got[0].CSeq().SeqNo+2 || got[2].CallID().Value() != got[0].CallID().Value() {
			t.Fatal("each answer keeps the Call-ID and advances the CSeq")
		}
	}
	for _, name := range []string{"MESSAGE to an address", "MESSAGE to a name"} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, func(c *config.Config) { c.SIP.Credentials = creds })
			ch := &challenger{code: 401, proxy: true}
			alice := challengedPhone(t, ch)
			to := alice.URI
			if name == "MESSAGE to a name" {
				_, port, _ := net.SplitHostPort(alice.Addr)
				to = "sip:auth-alice@localhost:" + port
			}
			cs := testpeer.NewClient(t, "auth-bob").Call(h.udp(), to, "actpass")
			if r := cs.SendOut(&msrp.Outgoing{ContentType: "text/plain", Body: []byte("hi"), SuccessReport: true}); r.StatusCode != 200 {
				t.Fatalf("SEND: %+v", r)
			}
			if m := alice.Recv(); string(m.Body()) != "hi" {
				t.Fatalf("got %q", m.Body())
			}
			if rep := cs.Report(); rep.StatusCode != 200 {
				t.Fatalf("REPORT %d %s, want the success report", rep.StatusCode, rep.Comment)
			}
			check(t, ch.requests())
		})
	}
	t.Run("INVITE", func(t *testing.T) {
		h := newHarness(t, func(c *config.Config) { c.SIP.Credentials = creds })
		alice := testpeer.NewPhone(t, "auth-alice")
		ch := &challenger{code: 401, proxy: true}
		addr := testpeer.NewUA(t, "challenger", func(srv *sipgo.Server, _ *sipgo.Client, _ string) {
			srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) { ch.handle(req, tx) })
		})
		alice.Send(h.udp(), "sip:bob@"+addr, "text/plain", "hi")
		deadline := time.Now().Add(waitFor)
		for len(ch.requests()) < 3 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		check(t, ch.requests())
		// The challenger's 200 has no SDP: the setup then fails, but not on a challenge.
		if e := h.events.waitKind(t, event.SetupFailed); e.Code == 401 || e.Code == 407 {
			t.Fatalf("setup failed with the challenge %d %s", e.Code, e.Reason)
		}
	})
}

// RFC 7616 §3.4 (RFC 2617 §3.2.2): nc counts the requests a client sent with a nonce, and the same nc twice is
// a replay, which a proxy that checks it refuses (stale). After the far end's 401 the request goes a second
// time with the proxy's nonce: its answer to the proxy's challenge is computed again, with nc 2.
func TestKeptChallengeAnswerCountsItsNonce(t *testing.T) {
	creds := append([]config.Credential{{Realm: "proxy-test", Username: "proxyuser", Password: "pp"}}, testCredentials...)
	h := newHarness(t, func(c *config.Config) { c.SIP.Credentials = creds })
	ch := &challenger{code: 401, proxy: true}
	alice := challengedPhone(t, ch)
	cs := testpeer.NewClient(t, "auth-bob").Call(h.udp(), alice.URI, "actpass")
	if r := cs.SendOut(&msrp.Outgoing{ContentType: "text/plain", Body: []byte("hi"), SuccessReport: true}); r.StatusCode != 200 {
		t.Fatalf("SEND: %+v", r)
	}
	alice.Recv()
	got := ch.requests()
	if len(got) != 3 {
		t.Fatalf("%d requests, want 3", len(got))
	}
	chal, err := digest.ParseChallenge(`Digest realm="proxy-test", nonce="abc123", algorithm=MD5, qop="auth"`)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for i, req := range got[1:] {
		a, err := digest.ParseCredentials(req.GetHeader("Proxy-Authorization").Value())
		if err != nil {
			t.Fatalf("request %d: %v", i+2, err)
		}
		want, _ := digest.Digest(chal, digest.Options{Method: string(req.Method), URI: req.Recipient.String(),
			Username: "proxyuser", Password: "pp", Cnonce: a.Cnonce, Count: a.Nc})
		if a.Nc != i+1 || a.Response != want.Response {
			t.Fatalf("request %d answers the proxy with nc %d (response ok: %v), want nc %d and its response", i+2, a.Nc, a.Response == want.Response, i+1)
		}
		seen = append(seen, a.Cnonce+"/"+strconv.Itoa(a.Nc))
	}
	if seen[0] == seen[1] {
		t.Fatalf("the proxy's nonce went twice with the same cnonce and nc %s: a replay", seen[0])
	}
}

// RFC 3261 §13.2.2.4: the ACK to the 2xx of an INVITE that answered challenges carries the same credentials as
// that INVITE (an ACK cannot be challenged; a proxy that asked for them on the INVITE sees them on its ACK).
func TestAckCarriesTheInvitesCredentials(t *testing.T) {
	creds := append([]config.Credential{{Realm: "proxy-test", Username: "proxyuser", Password: "pp"}}, testCredentials...)
	h := newHarness(t, func(c *config.Config) { c.SIP.Credentials = creds })
	alice := testpeer.NewPhone(t, "auth-alice")
	ch := &challenger{code: 401, proxy: true}
	acks := make(chan *sip.Request, 4)
	addr := testpeer.NewUA(t, "challenger", func(srv *sipgo.Server, _ *sipgo.Client, _ string) {
		srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) { ch.handle(req, tx) })
		srv.OnAck(func(req *sip.Request, _ sip.ServerTransaction) { acks <- req })
	})
	alice.Send(h.udp(), "sip:bob@"+addr, "text/plain", "hi")
	var ack *sip.Request
	select {
	case ack = <-acks:
	case <-time.After(waitFor):
		t.Fatal("no ACK to the 200")
	}
	got := ch.requests()
	if len(got) != 3 {
		t.Fatalf("%d INVITEs, want 3", len(got))
	}
	for _, name := range []string{"Proxy-Authorization", "Authorization"} {
		inv, a := got[2].GetHeader(name), ack.GetHeader(name)
		if inv == nil || a == nil || a.Value() != inv.Value() {
			t.Fatalf("ACK's %s %v, want the INVITE's %v", name, a, inv)
		}
	}
}
