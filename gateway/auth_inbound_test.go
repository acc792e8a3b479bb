package gateway

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/internal/testpeer"
)

const testRealm = "gw.test"

func ha1(user, realm, password string) string {
	s := md5.Sum([]byte(user + ":" + realm + ":" + password))
	return hex.EncodeToString(s[:])
}

// writeUsers writes a users file with alice (plain password) and carol (HA1) and returns its name.
func writeUsers(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users")
	data := "# page-mode users of the gateway\n\nalice:s3cret:with:colons\n  carol:" + testRealm + ":" + strings.ToUpper(ha1("carol", testRealm, "pw2")) + "\n"
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func withAuth(t testing.TB) func(*config.Config) {
	users := writeUsers(t)
	return func(c *config.Config) { c.SIP.Auth = config.SIPAuth{Realm: testRealm, UsersFile: users} }
}

func TestParseUsers(t *testing.T) {
	users, err := parseUsers([]byte("# c\nalice:pw\nbob:pa:ss\n\ncarol:"+testRealm+":"+ha1("carol", testRealm, "x")+"\n"), testRealm)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"alice": ha1("alice", testRealm, "pw"), "bob": ha1("bob", testRealm, "pa:ss"), "carol": ha1("carol", testRealm, "x")}
	for u, h := range want {
		if users[u] != h {
			t.Errorf("%s: HA1 %q, want %q", u, users[u], h)
		}
	}
	for _, bad := range []struct{ data, want string }{
		{"alice\n", "line 1"},
		{"# only a comment\n", "no users"},
		{"alice:pw\nalice:pw2\n", "line 2: user \"alice\" listed twice"},
		{"dave:other.realm:" + ha1("dave", "other.realm", "x") + "\n", "realm \"other.realm\""},
		{":pw\n", "line 1"},
	} {
		if _, err := parseUsers([]byte(bad.data), testRealm); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: %v, want an error with %q", bad.data, err, bad.want)
		}
	}
}

// answerChallenge answers res's challenge to req with user and password, as a phone does.
func answerChallenge(t *testing.T, p *testpeer.Phone, req *sip.Request, res *sip.Response, user, password string) *sip.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	res2, err := p.SIPClient().DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: user, Password: password})
	if err != nil {
		t.Fatalf("answering the challenge: %v", err)
	}
	return res2
}

// TestInboundAuthMessage: with sip.auth a MESSAGE without credentials gets 401 with a Digest challenge of
// the realm, and reaches nobody; with a user's right password (or HA1 entry) it is carried; a wrong
// password or an unknown user gets a new challenge.
func TestInboundAuthMessage(t *testing.T) {
	h := newHarness(t, withAuth(t))
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")

	req := alice.NewMessage(bob.URI, "text/plain", "who am I?")
	req.SetDestination(h.udp())
	res, err := doReq(alice.SIPClient(), req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 401 {
		t.Fatalf("MESSAGE without credentials: %d, want 401", res.StatusCode)
	}
	wa := res.GetHeader("WWW-Authenticate")
	if wa == nil {
		t.Fatal("401 without WWW-Authenticate")
	}
	chal, err := digest.ParseChallenge(wa.Value())
	if err != nil {
		t.Fatalf("challenge %q: %v", wa.Value(), err)
	}
	if chal.Realm != testRealm || !chal.SupportsQOP("auth") || chal.Nonce == "" || chal.Stale {
		t.Errorf("challenge %+v, want realm %s, qop auth, a nonce, not stale", chal, testRealm)
	}
	select {
	case <-bob.Invites():
		t.Fatal("an unauthenticated MESSAGE made the gateway INVITE")
	case <-time.After(100 * time.Millisecond):
	}

	for _, bad := range []struct{ user, password string }{{"alice", "wrong"}, {"mallory", "s3cret:with:colons"}} {
		req := alice.NewMessage(bob.URI, "text/plain", "let me in")
		req.SetDestination(h.udp())
		res, err := doReq(alice.SIPClient(), req)
		if err != nil {
			t.Fatal(err)
		}
		if res2 := answerChallenge(t, alice, req, res, bad.user, bad.password); res2.StatusCode != 401 {
			t.Errorf("%s/%s: %d, want 401", bad.user, bad.password, res2.StatusCode)
		}
	}

	if res2 := answerChallenge(t, alice, req, res, "alice", "s3cret:with:colons"); res2.StatusCode >= 300 {
		t.Fatalf("MESSAGE with alice's credentials: %d", res2.StatusCode)
	}
	cs := bob.WaitInvite()
	if m := cs.Recv(); string(m.Body) != "who am I?" {
		t.Fatalf("bob got %q", m.Body)
	}

	carol := testpeer.NewPhone(t, "carol")
	req = carol.NewMessage(bob.URI, "text/plain", "HA1 entry")
	req.SetDestination(h.udp())
	if res, err = doReq(carol.SIPClient(), req); err != nil || res.StatusCode != 401 {
		t.Fatalf("carol's first MESSAGE: %v %v", res, err)
	}
	if res2 := answerChallenge(t, carol, req, res, "carol", "pw2"); res2.StatusCode >= 300 {
		t.Fatalf("MESSAGE with carol's credentials (HA1 entry): %d", res2.StatusCode)
	}
	cs2 := bob.WaitInvite()
	if m := cs2.Recv(); string(m.Body) != "HA1 entry" {
		t.Fatalf("bob got %q", m.Body)
	}
	cs.Bye()
	cs2.Bye()
}

// TestInboundAuthTrustedCombine: a source outside sip.trusted gets 403 even with valid credentials.
func TestInboundAuthTrustedCombine(t *testing.T) {
	auth := withAuth(t)
	h := newHarness(t, func(c *config.Config) {
		auth(c)
		c.SIP.Trusted = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	})
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	req := alice.NewMessage(bob.URI, "text/plain", "trusted?")
	req.SetDestination(h.udp())
	res, err := doReq(alice.SIPClient(), req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 403 {
		t.Fatalf("untrusted source: %d, want 403 before any challenge", res.StatusCode)
	}
	// Credentials computed for a challenge from a gateway that trusts us do not open the other one.
	h2 := newHarness(t, auth)
	req2 := alice.NewMessage(bob.URI, "text/plain", "trusted?")
	req2.SetDestination(h2.udp())
	res2, err := doReq(alice.SIPClient(), req2)
	if err != nil || res2.StatusCode != 401 {
		t.Fatalf("trusted gateway: %v %v", res2, err)
	}
	ch := res2.GetHeader("WWW-Authenticate")
	c, err := digest.ParseChallenge(ch.Value())
	if err != nil {
		t.Fatal(err)
	}
	cred, err := digest.Digest(c, digest.Options{Method: "MESSAGE", URI: req.Recipient.Addr(), Username: "alice", Password: "s3cret:with:colons"})
	if err != nil {
		t.Fatal(err)
	}
	req3 := alice.NewMessage(bob.URI, "text/plain", "trusted?")
	req3.AppendHeader(sip.NewHeader("Authorization", cred.String()))
	req3.SetDestination(h.udp())
	if res3, err := doReq(alice.SIPClient(), req3); err != nil || res3.StatusCode != 403 {
		t.Fatalf("untrusted source with credentials: %v %v, want 403", res3, err)
	}
	select {
	case <-bob.Invites():
		t.Fatal("an untrusted source made the gateway INVITE")
	case <-time.After(100 * time.Millisecond):
	}
}

// TestInboundAuthInvite: a session-first INVITE needs credentials too; sipgo's client answers the 401, the
// session comes up and carries a message; the in-dialog BYE needs none.
func TestInboundAuthInvite(t *testing.T) {
	h := newHarness(t, withAuth(t))
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if _, err := bob.Invite(ctx, h.udp(), alice.URI, "active"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("INVITE without credentials: %v, want 401", err)
	}

	ctx, cancel = context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	cs, err := bob.InviteWith(ctx, h.udp(), alice.URI, "active", sipgo.AnswerOptions{Username: "carol", Password: "pw2"})
	if err != nil {
		t.Fatalf("INVITE with credentials: %v", err)
	}
	if r := cs.Send("text/plain", "authenticated chat"); r.StatusCode != 200 {
		t.Fatalf("SEND: %+v", r)
	}
	if m := alice.Recv(); string(m.Body()) != "authenticated chat" {
		t.Fatalf("alice got %q", m.Body())
	}
	if err := cs.TryBye(ctx); err != nil {
		t.Fatalf("in-dialog BYE: %v", err)
	}
}

// TestInboundAuthStaleNonce: right credentials on a nonce older than its lifetime are refused as stale,
// and the new challenge says stale=true; a nonce the gateway did not make is refused.
func TestInboundAuthStaleNonce(t *testing.T) {
	a, err := newInboundAuth(testRealm, writeUsers(t))
	if err != nil {
		t.Fatal(err)
	}
	signed := func(at time.Time, password string) *sip.Request {
		a.now = func() time.Time { return at }
		c, err := digest.ParseChallenge(a.challenge(false))
		a.now = time.Now
		if err != nil {
			t.Fatal(err)
		}
		var ruri sip.Uri
		sip.ParseUri("sip:bob@127.0.0.1", &ruri)
		req := sip.NewRequest(sip.MESSAGE, ruri)
		cred, err := digest.Digest(c, digest.Options{Method: "MESSAGE", URI: ruri.String(), Username: "alice", Password: password})
		if err != nil {
			t.Fatal(err)
		}
		req.AppendHeader(sip.NewHeader("Authorization", cred.String()))
		return req
	}
	if user, stale, err := a.verify(signed(time.Now(), "s3cret:with:colons")); err != nil || stale || user != "alice" {
		t.Fatalf("fresh: %q %v %v", user, stale, err)
	}
	if _, stale, err := a.verify(signed(time.Now().Add(-2*nonceLifetime), "s3cret:with:colons")); err == nil || !stale {
		t.Fatalf("old nonce: stale %v, err %v; want refused as stale", stale, err)
	}
	if _, stale, err := a.verify(signed(time.Now().Add(-2*nonceLifetime), "wrong")); err == nil || stale {
		t.Fatalf("old nonce, wrong password: stale %v, err %v; want refused, not stale", stale, err)
	}
	if c, _ := digest.ParseChallenge(a.challenge(true)); c == nil || !c.Stale {
		t.Errorf("stale challenge %q lacks stale=true", a.challenge(true))
	}
	other, _ := newInboundAuth(testRealm, writeUsers(t))
	if _, _, err := other.verify(signed(time.Now(), "s3cret:with:colons")); err == nil || !strings.Contains(err.Error(), "not one of ours") {
		t.Errorf("another gateway's nonce: %v", err)
	}
}

// TestInboundAuthUsersFileErrors: a missing or malformed users file stops New with the file named.
func TestInboundAuthUsersFileErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "users")
	os.WriteFile(bad, []byte("alice\n"), 0o600)
	for _, file := range []string{filepath.Join(t.TempDir(), "missing"), bad} {
		cfg := testConfig()
		cfg.SIP.Auth = config.SIPAuth{Realm: testRealm, UsersFile: file}
		if _, err := New(cfg, Options{}); err == nil || !strings.Contains(err.Error(), "sip.auth.users_file") {
			t.Errorf("%s: %v, want an error naming sip.auth.users_file", file, err)
		}
	}
}

// signedFor makes a MESSAGE to ruri with alice's credentials on a nonce issued at issued, with nonce count nc
// and digest uri uri ("" for ruri itself).
func signedFor(t *testing.T, a *inboundAuth, issued time.Time, ruri, uri string, nc int) *sip.Request {
	t.Helper()
	a.now = func() time.Time { return issued }
	c, err := digest.ParseChallenge(a.challenge(false))
	a.now = time.Now
	if err != nil {
		t.Fatal(err)
	}
	var u sip.Uri
	if err := sip.ParseUri(ruri, &u); err != nil {
		t.Fatal(err)
	}
	if uri == "" {
		uri = u.String()
	}
	req := sip.NewRequest(sip.MESSAGE, u)
	cred, err := digest.Digest(c, digest.Options{Method: "MESSAGE", URI: uri, Username: "alice", Password: "s3cret:with:colons", Count: nc})
	if err != nil {
		t.Fatal(err)
	}
	req.AppendHeader(sip.NewHeader("Authorization", cred.String()))
	return req
}

// TestInboundAuthReplay: credentials accepted once are refused when they come again (same nonce, nc not
// above the last accepted), as stale so that a client asks for a new nonce, not its user; a higher nc on the
// same nonce is accepted.
func TestInboundAuthReplay(t *testing.T) {
	a, err := newInboundAuth(testRealm, writeUsers(t))
	if err != nil {
		t.Fatal(err)
	}
	req := signedFor(t, a, time.Now(), "sip:bob@127.0.0.1", "", 1)
	if _, _, err := a.verify(req); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if _, stale, err := a.verify(req); !errors.Is(err, errNonceReused) || !stale {
		t.Fatalf("the same credentials again: stale %v, err %v; want refused as reused, stale", stale, err)
	}
	// The same nonce with nc 2, then 1 again.
	cred, _ := digest.ParseCredentials(req.GetHeader("Authorization").Value())
	for _, c := range []struct {
		nc int
		ok bool
	}{{2, true}, {1, false}, {2, false}, {5, true}} {
		chal := &digest.Challenge{Realm: testRealm, Nonce: cred.Nonce, Algorithm: "MD5", QOP: []string{"auth"}}
		next, err := digest.Digest(chal, digest.Options{Method: "MESSAGE", URI: cred.URI, Username: "alice",
			Password: "s3cret:with:colons", Count: c.nc, Cnonce: cred.Cnonce})
		if err != nil {
			t.Fatal(err)
		}
		r := req.Clone()
		r.ReplaceHeader(sip.NewHeader("Authorization", next.String()))
		if _, _, err := a.verify(r); (err == nil) != c.ok {
			t.Fatalf("nc %d: %v, want accepted %v", c.nc, err, c.ok)
		}
	}
}

// TestInboundAuthDigestURI: the digest uri must name the Request-URI; the same URI written with another case
// of scheme or host still does.
func TestInboundAuthDigestURI(t *testing.T) {
	a, err := newInboundAuth(testRealm, writeUsers(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ruri, uri string
		ok        bool
	}{
		{"sip:bob@127.0.0.1:5060", "", true},
		{"sip:bob@example.com", "SIP:bob@EXAMPLE.com", true},
		{"sip:bob@127.0.0.1:5060", "sip:mallory@127.0.0.1:5060", false},
		{"sip:bob@127.0.0.1:5060", "sip:bob@127.0.0.1:5070", false},
		{"sip:bob@127.0.0.1", "sip:bob@127.0.0.1;transport=tcp", false},
		{"sip:bob@127.0.0.1", "not a uri", false},
	} {
		_, _, err := a.verify(signedFor(t, a, time.Now(), c.ruri, c.uri, 1))
		if (err == nil) != c.ok {
			t.Errorf("Request-URI %s, digest uri %q: %v, want accepted %v", c.ruri, c.uri, err, c.ok)
		}
	}
}

// TestInboundAuthNonceBound: at maxNonceUses the nonce first accepted is forgotten, and with it every nonce
// issued no later: refused as stale, never taken for unused; newer nonces keep working.
func TestInboundAuthNonceBound(t *testing.T) {
	a, err := newInboundAuth(testRealm, writeUsers(t))
	if err != nil {
		t.Fatal(err)
	}
	a.uses.max = 2
	t0 := time.Now().Add(-time.Minute)
	unused := signedFor(t, a, t0.Add(500*time.Millisecond), "sip:bob@127.0.0.1", "", 1) // issued, not yet used
	first := signedFor(t, a, t0, "sip:bob@127.0.0.1", "", 1)
	for i, req := range []*sip.Request{first, signedFor(t, a, t0.Add(time.Second), "sip:bob@127.0.0.1", "", 1),
		signedFor(t, a, t0.Add(2*time.Second), "sip:bob@127.0.0.1", "", 1)} {
		if _, _, err := a.verify(req); err != nil {
			t.Fatalf("nonce %d: %v", i, err)
		}
	}
	if n := len(a.uses.nc); n != 2 {
		t.Fatalf("%d nonces remembered, want 2 (the bound)", n)
	}
	if _, stale, err := a.verify(first); err == nil || !stale {
		t.Fatalf("replay of a forgotten nonce: stale %v, err %v; want refused as stale", stale, err)
	}
	if _, stale, err := a.verify(unused); err == nil || !stale {
		t.Fatalf("unused nonce issued before the one forgotten: stale %v, err %v; want refused as stale", stale, err)
	}
	if _, _, err := a.verify(signedFor(t, a, time.Now(), "sip:bob@127.0.0.1", "", 1)); err != nil {
		t.Fatalf("a new nonce at the bound: %v", err)
	}
	// Expired nonces are dropped as time passes.
	a.now = func() time.Time { return time.Now().Add(2 * nonceLifetime) }
	a.uses.use("x", time.Now().Add(2*nonceLifetime), 1, a.now(), a.lifetime)
	if n := len(a.uses.nc); n != 1 {
		t.Fatalf("%d nonces remembered after the others expired, want 1", n)
	}
}

// TestInboundAuthReplayThroughGateway: a MESSAGE with credentials taken from an accepted one gets 401 and a
// new (stale) challenge, and makes no SEND; the accepted MESSAGE itself sent again (a retransmission, or a
// repeat within 32 s) is answered as the first was.
func TestInboundAuthReplayThroughGateway(t *testing.T) {
	h := newHarness(t, withAuth(t))
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")

	req := alice.NewMessage(bob.URI, "text/plain", "first")
	req.SetDestination(h.udp())
	res, err := doReq(alice.SIPClient(), req)
	if err != nil || res.StatusCode != 401 {
		t.Fatalf("MESSAGE without credentials: %v %v", res, err)
	}
	if res2 := answerChallenge(t, alice, req, res, "alice", "s3cret:with:colons"); res2.StatusCode != 202 {
		t.Fatalf("MESSAGE with alice's credentials: %d", res2.StatusCode)
	}
	cs := bob.WaitInvite()
	if m := cs.Recv(); string(m.Body) != "first" {
		t.Fatalf("bob got %q", m.Body)
	}
	auth := req.GetHeader("Authorization")
	if auth == nil {
		t.Fatal("the answered MESSAGE has no Authorization")
	}

	again := req.Clone()
	again.RemoveHeader("Via") // a new transaction: the gateway sees the same request again
	if res, err := doReq(alice.SIPClient(), again); err != nil || res.StatusCode != 202 {
		t.Fatalf("the accepted MESSAGE repeated: %v %v, want 202 as the first", res, err)
	}

	replay := alice.NewMessage(bob.URI, "text/plain", "replayed")
	replay.AppendHeader(sip.NewHeader("Authorization", auth.Value()))
	replay.SetDestination(h.udp())
	res, err = doReq(alice.SIPClient(), replay)
	if err != nil || res.StatusCode != 401 {
		t.Fatalf("a new MESSAGE with the accepted credentials: %v %v, want 401", res, err)
	}
	chal, err := digest.ParseChallenge(res.GetHeader("WWW-Authenticate").Value())
	if err != nil || !chal.Stale {
		t.Fatalf("challenge to a replay: %+v %v, want stale=true", chal, err)
	}
	if m, ok := cs.TryRecv(300 * time.Millisecond); ok {
		t.Fatalf("a replayed or repeated MESSAGE made a SEND: %q", m.Body)
	}
	cs.Bye()
}
