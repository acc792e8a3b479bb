package msrp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/icholy/digest"

	"github.com/msrpgw/msrpgw/internal/certs"
)

// relayScript plays an MSRP relay by hand on one connection: it reads the AUTH, hands it to auth, writes what
// auth returns (nil: nothing), does that again after a 401, and leaves the rest of the connection to the test
// (read and write on the returned rawPeer).
func relayScript(t *testing.T, auth func(req *Message) *Message) (URI, <-chan *rawPeer) {
	t.Helper()
	return relayScriptTLS(t, nil, auth)
}

// relayScriptTLS is relayScript over TLS with srv (an msrps relay), or over TCP when srv is nil.
func relayScriptTLS(t *testing.T, srv *tls.Config, auth func(req *Message) *Message) (URI, <-chan *rawPeer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	scheme := "msrp"
	if srv != nil {
		ln, scheme = tls.NewListener(ln, srv), "msrps"
	}
	t.Cleanup(func() { ln.Close() })
	peers := make(chan *rawPeer, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		t.Cleanup(func() { nc.Close() })
		p := &rawPeer{t: t, nc: nc, rd: NewReader(nc, Limits{})}
		for {
			req, err := p.rd.ReadMessage()
			if err != nil {
				return
			}
			res := auth(req)
			if res != nil {
				WriteMessage(nc, res)
			}
			if res == nil || res.StatusCode != 401 {
				break
			}
		}
		peers <- p
	}()
	u, err := ParseURI(fmt.Sprintf("%s://127.0.0.1:%d;tcp", scheme, ln.Addr().(*net.TCPAddr).Port))
	if err != nil {
		t.Fatal(err)
	}
	return u, peers
}

// grant answers an AUTH 200 with Use-Path usePath and Expires 600, as Kamailio's msrp_cmap_save does.
func grant(usePath string) func(req *Message) *Message {
	return func(req *Message) *Message {
		return &Message{TransactionID: req.TransactionID, StatusCode: 200, Comment: "OK", ToPath: req.FromPath,
			FromPath: req.ToPath[:1], Headers: []Header{{HdrUsePath, usePath}, {HdrExpires, "600"}}}
	}
}

func mustPath(t *testing.T, s string) []URI {
	t.Helper()
	p, err := ParsePath(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newRelay(t *testing.T, e *Endpoint, u URI) *Relay {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	r, err := e.Relay(ctx, u, nil)
	if err != nil {
		t.Fatalf("Relay: %v", err)
	}
	return r
}

// A client behind a relay (RFC 4976 §5): AUTH on a connection it opens, then everything of its sessions goes
// over that connection: To-Path the Use-Path and the peer's path, From-Path its own URI; and what the relay
// forwards to it (To-Path its URI alone, From-Path the relay and the peer) reaches the session on it.
func TestRelayClientSession(t *testing.T) {
	// Two relays, as RFC 4976 §5.1's example: the client's own, then one it reaches through it.
	const near, far = "msrp://127.0.0.1:7001/granted1;tcp", "msrp://127.0.0.1:7004/granted1b;tcp"
	const use = near + " " + far
	var auth *Message
	ru, peers := relayScript(t, func(req *Message) *Message { auth = req; return grant(use)(req) })
	e := newEP(t, Config{CheckFromPath: true}, false)
	r := newRelay(t, e, ru)
	p := recv(t, peers, "the relay's connection")
	if auth.Method != "AUTH" || FormatPath(auth.ToPath) != ru.String() || len(auth.FromPath) != 1 || auth.Body != nil {
		t.Fatalf("AUTH %s To-Path %s From-Path %s, want AUTH to the relay's URI from one URI of ours",
			auth.Method, FormatPath(auth.ToPath), FormatPath(auth.FromPath))
	}
	if got := FormatPath(r.UsePath()); got != use || r.Expires() != 600*time.Second {
		t.Fatalf("Use-Path %q, Expires %s; want %q, 10m0s", got, r.Expires(), use)
	}

	h := newRec()
	s := r.NewSession(h)
	if got, want := FormatPath(s.LocalPath()), far+" "+near+" "+s.LocalURI().String(); got != want {
		t.Fatalf("LocalPath %q, want %q", got, want)
	}
	select {
	case <-s.Bound():
	default:
		t.Fatal("a session behind a relay is not bound to the relay's connection")
	}
	const peer = "msrp://127.0.0.1:7002/peer1;tcp"
	s.SetPeerPath(mustPath(t, peer))

	// Connect: the active party's bodiless SEND, through the relay, answered by the relay.
	conn := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		conn <- s.Connect(ctx)
	}()
	m := p.read()
	if m.Method != MethodSend || m.Body != nil || FormatPath(m.ToPath) != use+" "+peer || FormatPath(m.FromPath) != s.LocalURI().String() {
		t.Fatalf("Connect sent %s To-Path %s From-Path %s", m.Method, FormatPath(m.ToPath), FormatPath(m.FromPath))
	}
	WriteMessage(p.nc, &Message{TransactionID: m.TransactionID, StatusCode: 200, ToPath: m.FromPath, FromPath: m.ToPath[:1]})
	if err := recv(t, conn, "Connect"); err != nil {
		t.Fatalf("Connect: %v", err)
	}

	res := make(chan SendResult, 1)
	if err := s.Send(&Outgoing{MessageID: "out1", ContentType: "text/plain", Body: []byte("hi")}, func(r SendResult) { res <- r }); err != nil {
		t.Fatal(err)
	}
	m = p.read()
	if m.MessageID() != "out1" || FormatPath(m.ToPath) != use+" "+peer || FormatPath(m.FromPath) != s.LocalURI().String() {
		t.Fatalf("SEND %s To-Path %s From-Path %s", m.MessageID(), FormatPath(m.ToPath), FormatPath(m.FromPath))
	}
	WriteMessage(p.nc, &Message{TransactionID: m.TransactionID, StatusCode: 200, ToPath: m.FromPath, FromPath: m.ToPath[:1]})
	if r := recv(t, res, "the Send's result"); r.StatusCode != 200 {
		t.Fatalf("Send %+v", r)
	}

	to := s.LocalURI().String()
	p.write(fmt.Sprintf("MSRP in000001 SEND\nTo-Path: %s\nFrom-Path: %s %s\nMessage-ID: in1\nSuccess-Report: yes\nByte-Range: 1-5/5\nContent-Type: text/plain\n\nhello\n-------in000001$\n", to, use, peer))
	resp := p.expect("in000001", 200)
	if FormatPath(resp.ToPath) != near || FormatPath(resp.FromPath) != to {
		t.Fatalf("response To-Path %s From-Path %s, want the relay, from us", FormatPath(resp.ToPath), FormatPath(resp.FromPath))
	}
	in := recv(t, h.msgs, "the relayed SEND")
	if string(in.Body) != "hello" {
		t.Fatalf("got %q", in.Body)
	}
	if err := s.Report(in, 200, "OK"); err != nil {
		t.Fatal(err)
	}
	if m := p.read(); m.Method != MethodReport || FormatPath(m.ToPath) != use+" "+peer || FormatPath(m.FromPath) != to {
		t.Fatalf("REPORT %s To-Path %s From-Path %s", m.Method, FormatPath(m.ToPath), FormatPath(m.FromPath))
	}
	// The relay's own failure REPORT about our message passes the From-Path check (it is the start of the path).
	p.write(fmt.Sprintf("MSRP rep00001 REPORT\nTo-Path: %s\nFrom-Path: %s\nMessage-ID: out1\nByte-Range: 1-2/2\nStatus: 000 408 Timeout\n-------rep00001$\n", to, near))
	if r := recv(t, h.reports, "the relay's REPORT"); r.StatusCode != 408 {
		t.Fatalf("REPORT %+v", r)
	}
	// A SEND that comes without the relay in front of the peer is not the peer's.
	p.write(fmt.Sprintf("MSRP in000002 SEND\nTo-Path: %s\nFrom-Path: %s\nMessage-ID: in2\nByte-Range: 1-2/2\nContent-Type: text/plain\n\nhi\n-------in000002$\n", to, peer))
	p.expect("in000002", 403)
	noDelivery(t, h, "a SEND from off the path")

	// The relay's connection outlives its sessions; Relay.Close ends it, and the sessions still on it.
	s.Close()
	recv(t, h.closed, "HandleClose")
	h2 := newRec()
	s2 := r.NewSession(h2)
	if n := e.NumConns(); n != 1 {
		t.Fatalf("%d connections after the last session closed, want the relay's", n)
	}
	r.Close()
	if err := recv(t, h2.closed, "HandleClose on the relay's loss"); !errors.Is(err, ErrConnLost) {
		t.Fatalf("HandleClose(%v), want ErrConnLost", err)
	}
	if s3 := r.NewSession(newRec()); s3.Send(&Outgoing{}, nil) != ErrClosed {
		t.Fatal("a session made on a closed relay is not closed")
	}
	_ = s2
}

// Sessions of one endpoint behind a relay and directly connected do not mix: the relay's connection is not
// reused for a direct session to the relay's address, and a direct connection cannot take a relay session.
func TestRelaySessionTakesRequestsOnTheRelayOnly(t *testing.T) {
	ru, peers := relayScript(t, grant("msrp://127.0.0.1:7001/granted2;tcp"))
	e := newEP(t, Config{}, false)
	r := newRelay(t, e, ru)
	recv(t, peers, "the relay's connection")
	h := newRec()
	s := r.NewSession(h)
	p := dialRaw(t, e)
	p.write(fmt.Sprintf("MSRP direct01 SEND\nTo-Path: %s\nFrom-Path: msrp://127.0.0.1:7003/x;tcp\nMessage-ID: d1\n-------direct01$\n", s.LocalURI()))
	p.expect("direct01", 506)
}

// The relay refuses the AUTH, or grants no Use-Path, or never answers: Relay fails with what happened and
// leaves no connection.
func TestRelayAuthFailures(t *testing.T) {
	cases := []struct {
		name  string
		auth  func(req *Message) *Message
		cred  *Credentials
		check func(err error) bool
	}{
		{"401 without credentials", challenge, nil, func(err error) bool { var se *StatusError; return errors.As(err, &se) && se.Code == 401 }},
		{"401 again", challenge, &Credentials{Username: "bob", Password: "wrong", AllowPlainTCP: true}, func(err error) bool { var se *StatusError; return errors.As(err, &se) && se.Code == 401 }},
		{"403", func(req *Message) *Message {
			return &Message{TransactionID: req.TransactionID, StatusCode: 403, ToPath: req.FromPath, FromPath: req.ToPath}
		}, nil, func(err error) bool { var se *StatusError; return errors.As(err, &se) && se.Code == 403 }},
		{"no Use-Path", grant(""), nil, func(err error) bool { return errors.Is(err, ErrNoUsePath) }},
		{"Use-Path without port", grant("msrp://127.0.0.1/x;tcp"), nil, func(err error) bool { return errors.Is(err, ErrNoUsePath) }},
		{"Use-Path host without port", grant("msrp://relay.example/x;tcp"), nil, func(err error) bool { return errors.Is(err, ErrNoUsePath) }},
		{"no answer", func(*Message) *Message { return nil }, nil, func(err error) bool { return errors.Is(err, context.DeadlineExceeded) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ru, _ := relayScript(t, c.auth)
			e := newEP(t, Config{}, false)
			// The relay answers all but the last case: the bound is a hang guard for those, and the time the
			// last one waits for an answer that never comes.
			wait := waitFor
			if c.name == "no answer" {
				wait = 200 * time.Millisecond
			}
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			r, err := e.Relay(ctx, ru, c.cred)
			if err == nil || !c.check(err) {
				t.Fatalf("Relay: %v, %v", r, err)
			}
			if n := e.NumConns(); n != 0 {
				t.Fatalf("%d connections left", n)
			}
		})
	}
}

// A relay on the peer's path may forward the peer's requests over a connection of its own to our listener
// rather than over the one we opened to it (Kamailio's msrp module does). Requests that come from the peer's
// path are taken on it, and answered there; anything else on it still gets 506, and a session whose peer path
// has no relay keeps to its one connection.
func TestRelayForwardsOnAnotherConnection(t *testing.T) {
	const relay, peer = "msrp://127.0.0.1:7001/r1;tcp", "msrp://127.0.0.1:7002/p1;tcp"
	e := newEP(t, Config{}, false)
	h := newRec()
	s := e.NewSession(h)
	s.SetPeerPath(mustPath(t, relay+" "+peer))
	to := s.LocalURI().String()
	bound := dialRaw(t, e) // stands for the connection we opened to the relay
	bound.write(fmt.Sprintf("MSRP bind0001 SEND\nTo-Path: %s\nFrom-Path: %s %s\nMessage-ID: b1\n-------bind0001$\n", to, relay, peer))
	bound.expect("bind0001", 200)
	recv(t, s.Bound(), "the binding")

	other := dialRaw(t, e)
	other.write(fmt.Sprintf("MSRP stray001 SEND\nTo-Path: %s\nFrom-Path: %s\nMessage-ID: x1\nByte-Range: 1-2/2\nContent-Type: text/plain\n\nno\n-------stray001$\n", to, peer))
	other.expect("stray001", 506)
	other.write(fmt.Sprintf("MSRP other001 SEND\nTo-Path: %s\nFrom-Path: %s %s\nMessage-ID: o1\nByte-Range: 1-2/2\nContent-Type: text/plain\n\nhi\n-------other001$\n", to, relay, peer))
	if r := other.expect("other001", 200); FormatPath(r.ToPath) != relay {
		t.Fatalf("response To-Path %s, want the relay", FormatPath(r.ToPath))
	}
	if m := recv(t, h.msgs, "the SEND on the relay's other connection"); string(m.Body) != "hi" {
		t.Fatalf("got %q", m.Body)
	}
	other.write(fmt.Sprintf("MSRP other002 REPORT\nTo-Path: %s\nFrom-Path: %s %s\nMessage-ID: out1\nByte-Range: 1-2/2\nStatus: 000 200 OK\n-------other002$\n", to, relay, peer))
	if r := recv(t, h.reports, "the REPORT on the relay's other connection"); r.MessageID != "out1" {
		t.Fatalf("REPORT %+v", r)
	}
	other.write(fmt.Sprintf("MSRP stray002 SEND\nTo-Path: %s\nFrom-Path: %s\nMessage-ID: x2\nByte-Range: 1-2/2\nContent-Type: text/plain\n\nno\n-------stray002$\n", to, peer))
	other.expect("stray002", 403)
	noDelivery(t, h, "a SEND from off the path")
	// Our own requests keep to the bound connection.
	if err := s.Send(&Outgoing{MessageID: "mine1", ContentType: "text/plain", Body: []byte("x")}, nil); err != nil {
		t.Fatal(err)
	}
	if m := bound.read(); m.MessageID() != "mine1" {
		t.Fatalf("bound connection got %s %s", m.Method, m.MessageID())
	}
	// The other connection's loss is not the session's.
	other.nc.Close()
	noClose := time.After(100 * time.Millisecond)
	select {
	case err := <-h.closed:
		t.Fatalf("HandleClose(%v) when the relay's other connection closed", err)
	case <-noClose:
	}

	// Without a relay on the peer's path, one connection only.
	d := e.NewSession(newRec())
	d.SetPeerPath(mustPath(t, peer))
	dp := dialRaw(t, e)
	dp.write(fmt.Sprintf("MSRP bind0002 SEND\nTo-Path: %s\nFrom-Path: %s\nMessage-ID: b2\n-------bind0002$\n", d.LocalURI(), peer))
	dp.expect("bind0002", 200)
	dp2 := dialRaw(t, e)
	dp2.write(fmt.Sprintf("MSRP second01 SEND\nTo-Path: %s\nFrom-Path: %s\nMessage-ID: b3\n-------second01$\n", d.LocalURI(), peer))
	dp2.expect("second01", 506)
}

// The relay's other connection is the session's while it lasts (no unbound timeout closes it), and is let go
// with the session: then, without sessions, it is closed after UnboundTimeout like any accepted connection.
func TestRelayOtherConnectionFollowsTheSession(t *testing.T) {
	const relay, peer = "msrp://127.0.0.1:7001/r2;tcp", "msrp://127.0.0.1:7002/p2;tcp"
	e := newEP(t, Config{UnboundTimeout: 100 * time.Millisecond}, false)
	s := e.NewSession(newRec())
	s.SetPeerPath(mustPath(t, relay+" "+peer))
	to := s.LocalURI().String()
	send := func(p *rawPeer, tid string) {
		t.Helper()
		p.write(fmt.Sprintf("MSRP %s SEND\nTo-Path: %s\nFrom-Path: %s %s\nMessage-ID: %s\n-------%s$\n", tid, to, relay, peer, tid, tid))
		p.expect(tid, 200)
	}
	bound, other := dialRaw(t, e), dialRaw(t, e)
	send(bound, "bind0001")
	send(other, "other001")
	time.Sleep(300 * time.Millisecond) // past UnboundTimeout
	send(other, "other002")
	s.Close()
	other.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	if m, err := other.rd.ReadMessage(); !errors.Is(err, io.EOF) {
		t.Fatalf("the relay's other connection after the session closed: %v, %v; want it closed", m, err)
	}
}

// The bound connection's loss, while the relay on the peer's path still forwards on another connection, is not
// the session's: it carries on over that one (Kamailio closes the one we opened to it once it idles, which it
// does while only the peer talks), our requests going there too. Its loss then is the session's.
func TestRelayOtherConnectionTakesOverTheSession(t *testing.T) {
	const relay, peer = "msrp://127.0.0.1:7001/r3;tcp", "msrp://127.0.0.1:7002/p3;tcp"
	e := newEP(t, Config{}, false)
	h := newRec()
	s := e.NewSession(h)
	s.SetPeerPath(mustPath(t, relay+" "+peer))
	to := s.LocalURI().String()
	bound, other := dialRaw(t, e), dialRaw(t, e)
	for _, c := range []struct {
		p   *rawPeer
		tid string
	}{{bound, "bind0001"}, {other, "other001"}} {
		c.p.write(fmt.Sprintf("MSRP %s SEND\nTo-Path: %s\nFrom-Path: %s %s\nMessage-ID: %s\n-------%s$\n", c.tid, to, relay, peer, c.tid, c.tid))
		c.p.expect(c.tid, 200)
	}
	bound.nc.Close()
	select {
	case err := <-h.closed:
		t.Fatalf("HandleClose(%v) when the bound connection closed and the relay's other one serves the session", err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := s.Send(&Outgoing{MessageID: "mine1", ContentType: "text/plain", Body: []byte("x")}, nil); err != nil {
		t.Fatal(err)
	}
	if m := other.read(); m.MessageID() != "mine1" {
		t.Fatalf("the relay's other connection got %s %s, want our SEND", m.Method, m.MessageID())
	}
	other.write(fmt.Sprintf("MSRP other002 SEND\nTo-Path: %s\nFrom-Path: %s %s\nMessage-ID: o2\nByte-Range: 1-2/2\nContent-Type: text/plain\n\nhi\n-------other002$\n", to, relay, peer))
	other.expect("other002", 200)
	if m := recv(t, h.msgs, "the SEND on the connection that took over"); string(m.Body) != "hi" {
		t.Fatalf("got %q", m.Body)
	}
	other.nc.Close()
	if err := recv(t, h.closed, "HandleClose once the last connection is lost"); !errors.Is(err, ErrConnLost) {
		t.Fatalf("HandleClose(%v), want ErrConnLost", err)
	}
}

// challenge answers every AUTH 401 with a Digest challenge, as Kamailio's auth_get_www_authenticate does.
func challenge(req *Message) *Message {
	return &Message{TransactionID: req.TransactionID, StatusCode: 401, Comment: "Unauthorized", ToPath: req.FromPath,
		FromPath: req.ToPath[:1], Headers: []Header{{HdrWWWAuthenticate, `Digest realm="relay.test", nonce="n0nc3", qop="auth"`}}}
}

// The relay challenges the AUTH (RFC 4976 §5.1): the client AUTHs again on the same connection, with the Digest
// answer computed over method AUTH and the To-Path URI, and the relay grants the path.
func TestRelayDigest(t *testing.T) {
	var authz string
	ru, peers := relayScript(t, func(req *Message) *Message {
		if req.Header(HdrAuthorization) == "" {
			return challenge(req)
		}
		authz = req.Header(HdrAuthorization)
		got, err := digest.ParseCredentials(authz)
		if err != nil {
			t.Errorf("Authorization %q: %v", authz, err)
			return nil
		}
		chal, _ := digest.ParseChallenge(challenge(req).Header(HdrWWWAuthenticate))
		want, _ := digest.Digest(chal, digest.Options{Method: "AUTH", URI: FormatPath(req.ToPath), Username: "bob",
			Password: "s3cret", Cnonce: got.Cnonce, Count: got.Nc})
		if got.Username != "bob" || got.URI != FormatPath(req.ToPath) || got.Response != want.Response {
			return challenge(req) // not answered again: the client gives up
		}
		return grant("msrp://127.0.0.1:7001/granted3;tcp")(req)
	})
	e := newEP(t, Config{}, false)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	r, err := e.Relay(ctx, ru, &Credentials{Username: "bob", Password: "s3cret", AllowPlainTCP: true})
	if err != nil {
		t.Fatalf("Relay: %v (Authorization %q)", err, authz)
	}
	recv(t, peers, "the relay's connection")
	if got := FormatPath(r.UsePath()); got != "msrp://127.0.0.1:7001/granted3;tcp" {
		t.Fatalf("Use-Path %q", got)
	}
}

// A session behind a relay takes requests on the relay's connection only, also once that connection is lost:
// a direct connection then cannot bind it (and so take its sends and reports) with its session URI.
func TestRelaySessionNotBoundDirectlyAfterLoss(t *testing.T) {
	ru, peers := relayScript(t, grant("msrp://127.0.0.1:7001/granted4;tcp"))
	e := newEP(t, Config{}, false)
	r := newRelay(t, e, ru)
	recv(t, peers, "the relay's connection")
	h := newRec()
	s := r.NewSession(h)
	r.Close()
	if err := recv(t, h.closed, "HandleClose on the relay's loss"); !errors.Is(err, ErrConnLost) {
		t.Fatalf("HandleClose(%v), want ErrConnLost", err)
	}
	p := dialRaw(t, e)
	p.write(fmt.Sprintf("MSRP direct02 SEND\nTo-Path: %s\nFrom-Path: msrp://127.0.0.1:7003/x;tcp\nMessage-ID: d2\n-------direct02$\n", s.LocalURI()))
	p.expect("direct02", 481)
	select {
	case <-s.Bound():
		t.Fatal("a direct connection bound the session behind a lost relay")
	default:
	}
}

// A client without a listener of its own, the one a relay is for, still advertises a path a peer takes: every
// URI of an SDP a=path carries a port (RFC 4975 §8.2), its own included, and requests to it reach the session.
func TestRelaySessionWithoutListenerHasPorts(t *testing.T) {
	ru, peers := relayScript(t, grant("msrp://127.0.0.1:7001/granted5;tcp"))
	e := NewEndpoint(Config{Logger: testLogger(t)})
	t.Cleanup(func() { e.Close() })
	r := newRelay(t, e, ru)
	p := recv(t, peers, "the relay's connection")
	h := newRec()
	s := r.NewSession(h)
	if _, err := ParseSDPPath(FormatPath(s.LocalPath())); err != nil {
		t.Fatalf("LocalPath %s: %v", FormatPath(s.LocalPath()), err)
	}
	p.write(fmt.Sprintf("MSRP in000005 SEND\nTo-Path: %s\nFrom-Path: msrp://127.0.0.1:7001/granted5;tcp msrp://127.0.0.1:7002/p5;tcp\nMessage-ID: in5\nByte-Range: 1-2/2\nContent-Type: text/plain\n\nhi\n-------in000005$\n", s.LocalURI()))
	p.expect("in000005", 200)
	recv(t, h.msgs, "the relayed SEND")
}

// Expires is the relay's grant in seconds, 0 when it gave none we can read; one too long for a Duration is the
// longest there is, not a negative one.
func TestRelayExpires(t *testing.T) {
	for _, c := range []struct {
		expires string
		want    time.Duration
	}{
		{"600", 10 * time.Minute},
		{"", 0},
		{"0", 0},
		{"-5", 0},
		{"soon", 0},
		{"99999999999", time.Duration(1<<63 - 1)},
		{"99999999999999999999", time.Duration(1<<63 - 1)},
	} {
		ru, _ := relayScript(t, func(req *Message) *Message {
			m := grant("msrp://127.0.0.1:7001/granted6;tcp")(req)
			m.Headers[1].Value = c.expires
			return m
		})
		e := newEP(t, Config{}, false)
		if got := newRelay(t, e, ru).Expires(); got != c.want {
			t.Errorf("Expires: %s gives %s, want %s", c.expires, got, c.want)
		}
	}
}

// An msrps relay's certificate is checked for its host even when the endpoint's client TLS config leaves
// checks to each session (InsecureSkipVerify, as the gateway's does: sessions check the peer's a=fingerprint):
// a relay is no SDP peer, nothing else would check it.
func TestRelayTLSCertificateChecked(t *testing.T) {
	pair, err := certs.Generate([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(pair.CertPEM, pair.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	srv := &tls.Config{Certificates: []tls.Certificate{cert}}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pair.CertPEM)
	for _, c := range []struct {
		name  string
		roots *x509.CertPool
		ok    bool
	}{{"unknown CA", nil, false}, {"trusted", roots, true}} {
		t.Run(c.name, func(t *testing.T) {
			u, _ := relayScriptTLS(t, srv, grant("msrps://127.0.0.1:1/r;tcp"))
			e := NewEndpoint(Config{Logger: testLogger(t), ClientTLSConfig: &tls.Config{InsecureSkipVerify: true, RootCAs: c.roots}})
			t.Cleanup(func() { e.Close() })
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			r, err := e.Relay(ctx, u, nil)
			if c.ok && err != nil {
				t.Fatalf("Relay to a relay with a trusted certificate: %v", err)
			}
			if !c.ok && err == nil {
				r.Close()
				t.Fatal("Relay took a relay whose certificate nobody checked")
			}
		})
	}
}

// RFC 4976 §8 sends AUTH over TLS only: the Digest answer is not sent to a relay reached over plain TCP
// unless the credentials allow it (lab relays; the other relay tests do).
func TestRelayDigestNotOverPlainTCP(t *testing.T) {
	var sawAuthz atomic.Bool
	ru, _ := relayScript(t, func(req *Message) *Message {
		if req.Header(HdrAuthorization) == "" {
			return challenge(req)
		}
		sawAuthz.Store(true)
		return grant("msrp://127.0.0.1:7001/granted;tcp")(req)
	})
	e := newEP(t, Config{}, false)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	r, err := e.Relay(ctx, ru, &Credentials{Username: "bob", Password: "s3cret"})
	if err == nil {
		defer r.Close()
	}
	if sawAuthz.Load() || !errors.Is(err, ErrPlainAuth) {
		t.Fatalf("Relay(%s) over plain TCP: err=%v, Authorization sent in the clear=%v; want ErrPlainAuth", ru, err, sawAuthz.Load())
	}
}
