package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/internal/certs"
	"github.com/msrpgw/msrpgw/internal/testpeer"
	"github.com/msrpgw/msrpgw/msrp"
	"github.com/msrpgw/msrpgw/msrp/sdp"
)

// testPair is a self-signed pair on disk, as `msrpgw gen-cert` writes it.
type testPair struct {
	certFile, keyFile string
	cert              tls.Certificate
	fingerprint       string // SHA-256 a=fingerprint value
}

func newTestPair(t testing.TB) testPair {
	t.Helper()
	certFile, keyFile, err := certs.WriteTemp(t.TempDir(), "127.0.0.1", "127.0.0.2", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return testPair{certFile: certFile, keyFile: keyFile, cert: c, fingerprint: certs.SHA256(c.Leaf)}
}

func (p testPair) pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.cert.Leaf)
	return pool
}

// withMSRPS makes the gateway listen msrps:// with pair.
func withMSRPS(pair testPair) func(*config.Config) {
	return func(c *config.Config) {
		c.MSRP.Listen = "msrps://127.0.0.1:0;tcp"
		c.MSRP.TLS = config.TLS{Cert: pair.certFile, Key: pair.keyFile}
	}
}

// tlsClient is a session-mode client whose MSRP endpoint listens and dials msrps with its own self-signed
// certificate, advertises fp as its a=fingerprint ("" for none), and checks the gateway's certificate against
// the gateway's a=fingerprint.
type tlsClient struct {
	*testpeer.Client
	gwFP chan string // the a=fingerprint of each SDP the gateway sent
}

func newTLSClient(t *testing.T, user string, own testPair, fp string) *tlsClient {
	t.Helper()
	tc := &tlsClient{gwFP: make(chan string, 16)}
	tc.Client = testpeer.NewClientWith(t, user, testpeer.ClientConfig{
		TLS:         &tls.Config{Certificates: []tls.Certificate{own.cert}, ClientAuth: tls.RequestClientCert},
		ClientTLS:   &tls.Config{Certificates: []tls.Certificate{own.cert}, InsecureSkipVerify: true},
		Fingerprint: fp,
		PeerMedia:   tc.gatewayMedia,
	})
	return tc
}

// gatewayMedia records the gateway's a=fingerprint and makes the client check the gateway's certificate
// against it.
func (tc *tlsClient) gatewayMedia(cs *testpeer.ClientSession, m *sdp.Media) error {
	tc.gwFP <- strings.Join(m.Fingerprints, ", ")
	fps := m.Fingerprints
	cs.MSRP.SetPeerVerifier(func(st *tls.ConnectionState, dialled bool) error {
		if st == nil || len(st.PeerCertificates) == 0 {
			return errNoPeerCertificate
		}
		return certs.MatchAny(fps, st.PeerCertificates[0])
	})
	return nil
}

// TestMSRPOverTLSMessageFirst: with msrps:// and msrp.tls the gateway offers TCP/TLS/MSRP, an msrps path and
// the SHA-256 a=fingerprint of its certificate, dials the client's msrps URI, and accepts the client's
// self-signed certificate exactly when it matches the client's a=fingerprint (any hash name case);
// otherwise the setup fails with 480 and the dialog gets BYE.
func TestMSRPOverTLSMessageFirst(t *testing.T) {
	gwPair, clientPair, otherPair := newTestPair(t), newTestPair(t), newTestPair(t)
	lowerSHA1 := func(p testPair) string {
		f, err := certs.Of(p.cert.Leaf.Raw, "SHA-1")
		if err != nil {
			t.Fatal(err)
		}
		return strings.ToLower(f.String())
	}
	for _, tc := range []struct {
		name string
		fp   string // the client's a=fingerprint
		ok   bool
	}{
		{"sha-256 matches", clientPair.fingerprint, true},
		{"lower-case sha-1 matches", lowerSHA1(clientPair), true},
		{"fingerprint of another certificate", otherPair.fingerprint, false},
		{"self-signed without fingerprint", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, withMSRPS(gwPair))
			alice := testpeer.NewPhone(t, "alice")
			bob := newTLSClient(t, "bob", clientPair, tc.fp)
			res := alice.Send(h.udp(), bob.URI, "text/plain", "over tls")
			if res.StatusCode >= 300 {
				t.Fatalf("MESSAGE answered %d", res.StatusCode)
			}
			cs := bob.WaitInvite()
			if got := <-bob.gwFP; got != gwPair.fingerprint {
				t.Errorf("gateway's a=fingerprint %q, want %q", got, gwPair.fingerprint)
			}
			if p := cs.MSRP.PeerPath(); len(p) != 1 || !p[0].Secure {
				t.Errorf("gateway's path %v, want one msrps URI", p)
			}
			if !tc.ok {
				e := h.events.waitKind(t, event.SetupFailed)
				if e.Code != 480 {
					t.Errorf("setup_failed %d %s, want 480", e.Code, e.Reason)
				}
				cs.WaitBye()
				select {
				case m := <-cs.Inbox():
					t.Fatalf("the client got %q over a refused connection", m.Body)
				default:
				}
				return
			}
			if m := cs.Recv(); string(m.Body) != "over tls" {
				t.Fatalf("client got %q", m.Body)
			}
			if r := cs.Send("text/plain", "back over tls"); r.StatusCode != 200 {
				t.Fatalf("SEND answered %+v", r)
			}
			if m := alice.Recv(); string(m.Body()) != "back over tls" {
				t.Fatalf("alice got %q", m.Body())
			}
			cs.Bye() // before the client's cleanup, so the gateway has no BYE left to send to a closed UA
		})
	}
}

// TestMSRPOverTLSSessionFirst: the client INVITEs with a=setup:active and connects to the gateway's msrps
// listener showing its certificate; the gateway binds the session only when that certificate matches the
// client's a=fingerprint, else it refuses the binding (403), ends the session and sends BYE.
func TestMSRPOverTLSSessionFirst(t *testing.T) {
	gwPair, clientPair, otherPair := newTestPair(t), newTestPair(t), newTestPair(t)
	h := newHarness(t, withMSRPS(gwPair))
	alice := testpeer.NewPhone(t, "alice")

	bob := newTLSClient(t, "bob", clientPair, clientPair.fingerprint)
	cs := bob.Call(h.udp(), alice.URI, "active")
	if got := <-bob.gwFP; got != gwPair.fingerprint {
		t.Errorf("gateway's answer has a=fingerprint %q, want %q", got, gwPair.fingerprint)
	}
	if r := cs.Send("text/plain", "hello alice"); r.StatusCode != 200 {
		t.Fatalf("SEND answered %+v", r)
	}
	if m := alice.Recv(); string(m.Body()) != "hello alice" {
		t.Fatalf("alice got %q", m.Body())
	}

	carol := newTLSClient(t, "carol", clientPair, otherPair.fingerprint)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	cs2, err := carol.Invite(ctx, h.udp(), alice.URI, "active")
	// The gateway answers the binding SEND 403 and ends the session at once: its BYE may close our
	// session before the 403 is read.
	var se *msrp.StatusError
	if cs2 == nil || !(asStatus(err, &se) && se.Code == 403 || errors.Is(err, msrp.ErrClosed)) {
		t.Fatalf("connect with a certificate that is not the a=fingerprint: %v, want the gateway's 403 (or its BYE)", err)
	}
	cs2.WaitBye()
	alice.Quiet(100 * time.Millisecond)
	cs.Bye()
}

// TestMSRPSNeedsCertificate: msrps:// without msrp.tls does not start.
func TestMSRPSNeedsCertificate(t *testing.T) {
	cfg := testConfig()
	cfg.MSRP.Listen = "msrps://127.0.0.1:0;tcp"
	gw, err := New(cfg, Options{Logger: testpeer.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(); err == nil || !strings.Contains(err.Error(), "msrp.tls") {
		gw.Close()
		t.Fatalf("Start: %v, want an error naming msrp.tls", err)
	}
	cfg.MSRP.TLS = config.TLS{Cert: filepath.Join(t.TempDir(), "missing.pem"), Key: "missing.key"}
	gw, _ = New(cfg, Options{Logger: testpeer.Logger(t)})
	if err := gw.Start(); err == nil || !strings.Contains(err.Error(), "missing.pem") {
		gw.Close()
		t.Fatalf("Start with a missing certificate: %v, want an error naming the file", err)
	}
}

func asStatus(err error, se **msrp.StatusError) bool {
	for err != nil {
		if s, ok := err.(*msrp.StatusError); ok {
			*se = s
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

// newTLSPhone is a page-mode phone reachable only over TLS at sip:user@127.0.0.1:PORT;transport=tls. It
// trusts roots for the servers it connects to and shows own (when not nil) as its client certificate.
func newTLSPhone(t *testing.T, user string, own *testPair, roots *x509.CertPool) *testpeer.Phone {
	t.Helper()
	clientConf := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	serverPair := newTestPair(t)
	if own != nil {
		clientConf.Certificates = []tls.Certificate{own.cert}
		serverPair = *own
	}
	return testpeer.NewPhoneWith(t, user, testpeer.PhoneConfig{
		TLS:       &tls.Config{Certificates: []tls.Certificate{serverPair.cert}},
		ClientTLS: clientConf,
	})
}

// sendTLS sends a MESSAGE from p to toURI through the gateway's tls listener.
func sendTLS(p *testpeer.Phone, gwAddr, toURI, body string) (*sip.Response, error) {
	return sendTLSWithin(p, waitFor, gwAddr, toURI, body)
}

// sendTLSWithin is sendTLS waiting at most d for the answer. (With TLS 1.3 a client learns that its
// certificate was refused only when it reads: its request is written, and no answer ever comes.)
func sendTLSWithin(p *testpeer.Phone, d time.Duration, gwAddr, toURI, body string) (*sip.Response, error) {
	req := p.NewMessage(toURI, "text/plain", body)
	req.SetTransport("TLS")
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return p.Do(ctx, gwAddr, req)
}

// TestSIPOverTLS: a phone sends its MESSAGE over the gateway's tls listener, showing a client certificate
// that sip.tls.client_ca signed; the reply goes back to its ;transport=tls URI over TLS, the phone's server
// certificate verified against sip.tls.client_ca. A client without a certificate, or with one the CA did
// not sign, is refused at the handshake, and the gateway keeps serving.
func TestSIPOverTLS(t *testing.T) {
	gwPair, phonePair, strangerPair := newTestPair(t), newTestPair(t), newTestPair(t)
	h := newHarness(t, func(c *config.Config) {
		// Another host than the tcp listener's: tcp:HOST:0 and tls:HOST:0 would be given one port to share.
		c.SIP.Listen = append(c.SIP.Listen, config.Listen{Network: "tls", Addr: "127.0.0.2:0"})
		c.SIP.TLS = config.TLS{Cert: gwPair.certFile, Key: gwPair.keyFile, ClientCA: phonePair.certFile}
	})
	gwTLS := h.gw.SIPAddr("tls")
	if gwTLS == "" {
		t.Fatal("no tls listener")
	}
	alice := newTLSPhone(t, "alice", &phonePair, gwPair.pool())
	bob := testpeer.NewClient(t, "bob")

	res, err := sendTLS(alice, gwTLS, bob.URI, "over sip tls")
	if err != nil || res.StatusCode >= 300 {
		t.Fatalf("MESSAGE over TLS: %v %v", res, err)
	}
	cs := bob.WaitInvite()
	if m := cs.Recv(); string(m.Body) != "over sip tls" {
		t.Fatalf("bob got %q", m.Body)
	}
	if r := cs.Send("text/plain", "reply over sip tls"); r.StatusCode != 200 {
		t.Fatalf("SEND answered %+v", r)
	}
	m := alice.Recv()
	if string(m.Body()) != "reply over sip tls" {
		t.Fatalf("alice got %q", m.Body())
	}
	if tp := m.Transport(); !strings.EqualFold(tp, "TLS") {
		t.Errorf("reply came over %s, want TLS", tp)
	}

	for _, who := range []struct {
		name string
		own  *testPair
	}{{"no client certificate", nil}, {"certificate the CA did not sign", &strangerPair}} {
		mallory := newTLSPhone(t, "mallory", who.own, gwPair.pool())
		if res, err := sendTLSWithin(mallory, time.Second, gwTLS, bob.URI, "let me in"); err == nil {
			t.Errorf("%s: MESSAGE answered %d, want the handshake refused", who.name, res.StatusCode)
		}
	}
	select {
	case m := <-cs.Inbox():
		t.Fatalf("a refused client's message reached bob: %q", m.Body)
	default:
	}
	// Still serving.
	if res, err := sendTLS(alice, gwTLS, bob.URI, "still here"); err != nil || res.StatusCode >= 300 {
		t.Fatalf("MESSAGE after the refusals: %v %v", res, err)
	}
	if m := cs.Recv(); string(m.Body) != "still here" {
		t.Fatalf("bob got %q", m.Body)
	}
	cs.Bye()
}

// TestSIPTLSWithoutClientCA: without sip.tls.client_ca any TLS client may connect (the listener shows the
// gateway's certificate, which the client checks).
func TestSIPTLSWithoutClientCA(t *testing.T) {
	gwPair := newTestPair(t)
	h := newHarness(t, func(c *config.Config) {
		c.SIP.Listen = []config.Listen{{Network: "tls", Addr: "127.0.0.1:0"}, {Network: "udp", Addr: "127.0.0.1:0"}}
		c.SIP.TLS = config.TLS{Cert: gwPair.certFile, Key: gwPair.keyFile}
	})
	alice := newTLSPhone(t, "alice", nil, gwPair.pool())
	bob := testpeer.NewClient(t, "bob")
	if res, err := sendTLS(alice, h.gw.SIPAddr("tls"), bob.URI, "anonymous tls"); err != nil || res.StatusCode >= 300 {
		t.Fatalf("MESSAGE over TLS: %v %v", res, err)
	}
	cs := bob.WaitInvite()
	if m := cs.Recv(); string(m.Body) != "anonymous tls" {
		t.Fatalf("bob got %q", m.Body)
	}
	// A client that does not trust the gateway's certificate does not get through.
	eve := newTLSPhone(t, "eve", nil, newTestPair(t).pool())
	if _, err := sendTLSWithin(eve, time.Second, h.gw.SIPAddr("tls"), bob.URI, "x"); err == nil {
		t.Error("a client that does not trust the gateway's certificate got an answer")
	}
	cs.Bye()
}

// sipsURI is uri (sip:USER@HOST:PORT;transport=tls) as a sips: URI without a transport parameter, as an
// operator or a phone writes one.
func sipsURI(uri string) string {
	return "sips:" + strings.TrimSuffix(strings.TrimPrefix(uri, "sip:"), ";transport=tls")
}

// TestSIPSRequestURI: a request the gateway makes to a sips: URI goes over TLS (RFC 3261 §26.2), although
// the URI names no transport: the INVITE of a MESSAGE to sips:bob, and the MESSAGE of a session whose INVITE
// was to sips:alice. Both peers listen for SIP over TLS only.
func TestSIPSRequestURI(t *testing.T) {
	gwPair, peerPair := newTestPair(t), newTestPair(t)
	h := newHarness(t, func(c *config.Config) {
		c.SIP.Listen = append(c.SIP.Listen, config.Listen{Network: "tls", Addr: "127.0.0.2:0"})
		c.SIP.TLS = config.TLS{Cert: gwPair.certFile, Key: gwPair.keyFile, ClientCA: peerPair.certFile}
	})
	alice := newTLSPhone(t, "alice", &peerPair, gwPair.pool())

	t.Run("MESSAGE first", func(t *testing.T) {
		bob := testpeer.NewClientWith(t, "bob", testpeer.ClientConfig{
			SIPTLS:       &tls.Config{Certificates: []tls.Certificate{peerPair.cert}},
			SIPClientTLS: &tls.Config{Certificates: []tls.Certificate{peerPair.cert}, RootCAs: gwPair.pool()},
		})
		res, err := sendTLS(alice, h.gw.SIPAddr("tls"), sipsURI(bob.URI), "to sips bob")
		if err != nil || res.StatusCode >= 300 {
			t.Fatalf("MESSAGE over TLS: %v %v", res, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		cs, err := bob.TryWaitInvite(ctx)
		if err != nil {
			t.Fatalf("no INVITE over TLS to %s: %v", sipsURI(bob.URI), err)
		}
		if m := cs.Recv(); string(m.Body) != "to sips bob" {
			t.Fatalf("bob got %q", m.Body)
		}
		h.events.waitKind(t, event.MessageDelivered)
		// The gateway's BYE, to bob's Contact over the dialog's TLS.
		for _, s := range h.gw.Sessions() {
			h.gw.EndSession(s.Key)
		}
		cs.WaitBye()
	})
	t.Run("session first", func(t *testing.T) {
		carol := testpeer.NewClient(t, "carol")
		cs := carol.Call(h.udp(), sipsURI(alice.URI), "active")
		if r := cs.Send("text/plain", "to sips alice"); r.StatusCode != 200 {
			t.Fatalf("SEND answered %+v", r)
		}
		m := alice.Recv()
		if string(m.Body()) != "to sips alice" {
			t.Fatalf("alice got %q", m.Body())
		}
		if tp := m.Transport(); !strings.EqualFold(tp, "TLS") {
			t.Errorf("MESSAGE came over %s, want TLS", tp)
		}
		cs.Bye()
	})
}

// TestMSRPSPlainPeer: a gateway listening msrps:// never connects to a peer's plain msrp:// first hop: the
// connection would be plain TCP, on which its msrps session takes no request, so its messages would go in
// the clear and the peer's would all get 481. The MESSAGE-first setup fails (480, BYE) and a session-first
// offer is refused 488, before anything is sent. A plain peer that connects to the gateway's msrps URI
// itself, over TLS, is served.
func TestMSRPSPlainPeer(t *testing.T) {
	gwPair := newTestPair(t)
	h := newHarness(t, withMSRPS(gwPair))
	alice := testpeer.NewPhone(t, "alice")

	t.Run("MESSAGE first, we would connect", func(t *testing.T) {
		bob := testpeer.NewClient(t, "bob") // answers a=setup:passive with its msrp:// path
		if res := alice.Send(h.udp(), bob.URI, "text/plain", "not in the clear"); res.StatusCode >= 300 {
			t.Fatalf("MESSAGE answered %d", res.StatusCode)
		}
		cs := bob.WaitInvite()
		if e := h.events.waitKind(t, event.SetupFailed); e.Code != 480 {
			t.Errorf("setup_failed %d %s, want 480", e.Code, e.Reason)
		}
		cs.WaitBye()
		if m, ok := cs.TryRecv(100 * time.Millisecond); ok {
			t.Fatalf("bob got %q over plain TCP", m.Body)
		}
		alice.Recv() // the setup failure notification
	})
	t.Run("session first, we would connect", func(t *testing.T) {
		carol := testpeer.NewClient(t, "carol")
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		_, err := carol.Invite(ctx, h.udp(), alice.URI, "passive")
		if code := testpeer.InviteCode(err); code != 488 {
			t.Fatalf("INVITE with a plain msrp:// path and a=setup:passive: %v, want 488", err)
		}
	})
	t.Run("session first, the peer connects over TLS", func(t *testing.T) {
		dave := testpeer.NewClientWith(t, "dave", testpeer.ClientConfig{
			ClientTLS: &tls.Config{RootCAs: gwPair.pool(), MinVersion: tls.VersionTLS12},
		})
		cs := dave.Call(h.udp(), alice.URI, "active")
		if r := cs.Send("text/plain", "hello over tls"); r.StatusCode != 200 {
			t.Fatalf("SEND answered %+v", r)
		}
		if m := alice.Recv(); string(m.Body()) != "hello over tls" {
			t.Fatalf("alice got %q", m.Body())
		}
		cs.Bye()
	})
}

// TestSIPSContact: a sips: sip.contact names the gateway's tls listener, whose port it gets when it has none
// (or the listener's address with port-0 listeners), not the port of a udp or tcp listener, where a peer's
// TLS finds no TLS: a peer's BYE in the dialog of our INVITE to its sips: URI reaches us over TLS.
func TestSIPSContact(t *testing.T) {
	gwPair, peerPair := newTestPair(t), newTestPair(t)
	udpPort, tlsPort := freeTCPPort(t), freeTCPPort(t)
	for _, tc := range []struct {
		name, contact string
		listen        []config.Listen
		want          func(h *harness) string
	}{
		{"port-0 listeners", "sips:127.0.0.1:0",
			[]config.Listen{{Network: "udp", Addr: "127.0.0.1:0"}, {Network: "tcp", Addr: "127.0.0.1:0"}, {Network: "tls", Addr: "127.0.0.2:0"}},
			func(h *harness) string { return "sips:" + h.gw.SIPAddr("tls") }},
		{"contact without a port", "sips:127.0.0.1",
			[]config.Listen{{Network: "udp", Addr: fmt.Sprintf("127.0.0.1:%d", udpPort)}, {Network: "tls", Addr: fmt.Sprintf("127.0.0.1:%d", tlsPort)}},
			func(*harness) string { return fmt.Sprintf("sips:127.0.0.1:%d", tlsPort) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *config.Config) {
				c.SIP.Listen, c.SIP.Contact = tc.listen, tc.contact
				c.SIP.TLS = config.TLS{Cert: gwPair.certFile, Key: gwPair.keyFile, ClientCA: peerPair.certFile}
			})
			alice := testpeer.NewPhone(t, "alice")
			bob := testpeer.NewClientWith(t, "bob", testpeer.ClientConfig{
				SIPTLS:       &tls.Config{Certificates: []tls.Certificate{peerPair.cert}},
				SIPClientTLS: &tls.Config{Certificates: []tls.Certificate{peerPair.cert}, RootCAs: gwPair.pool()},
			})
			if res := alice.Send(h.udp(), sipsURI(bob.URI), "text/plain", "hello"); res.StatusCode >= 300 {
				t.Fatalf("MESSAGE answered %d", res.StatusCode)
			}
			cs := bob.WaitInvite()
			if got, want := cs.ServerDialog().InviteRequest.Contact().Address.String(), tc.want(h); got != want {
				t.Errorf("the INVITE's Contact is %s, want %s", got, want)
			}
			if m := cs.Recv(); string(m.Body) != "hello" {
				t.Fatalf("bob got %q", m.Body)
			}
			h.events.waitKind(t, event.MessageDelivered)
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			if err := cs.TryBye(ctx); err != nil {
				t.Fatalf("bob's BYE to the gateway's Contact: %v", err)
			}
			h.events.waitKind(t, event.SessionEnded)
		})
	}
}

// A certificate outside its validity period is loaded (a peer that checks only a=fingerprint takes it), and
// logged with the key and file it came from: a peer that verifies it will fail the handshake.
func TestCertificateValidityLogged(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	for _, tc := range []struct {
		name                string
		notBefore, notAfter time.Time
		want                string // the log line, "" for none
	}{
		{"expired", now.Add(-2 * time.Hour), now.Add(-time.Hour), "TLS certificate expired"},
		{"not-yet-valid", now.Add(time.Hour), now.Add(2 * time.Hour), "TLS certificate not yet valid"},
		{"valid", now.Add(-time.Hour), now.Add(time.Hour), ""},
	} {
		tlsConf := writeCertificate(t, dir, tc.name, tc.notBefore, tc.notAfter)
		logs := newCapturedLog()
		if _, err := loadCertificate("msrp.tls", tlsConf, slog.New(logs)); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		logs.mu.Lock()
		lines := append([]logLine(nil), *logs.lines...)
		logs.mu.Unlock()
		var got []string
		for _, l := range lines {
			got = append(got, l.msg)
			if l.msg == tc.want && (l.attrs["key"] != "msrp.tls.cert" || l.attrs["file"] != tlsConf.Cert) {
				t.Errorf("%s: logged %v, want the key and file", tc.name, l.attrs)
			}
		}
		if tc.want == "" && len(got) > 0 || tc.want != "" && (len(got) != 1 || got[0] != tc.want) {
			t.Errorf("%s: logged %q, want %q", tc.name, got, tc.want)
		}
	}
}

// writeCertificate writes a self-signed certificate for 127.0.0.1, valid from notBefore to notAfter, and its
// key, as a tls: section names them.
func writeCertificate(t *testing.T, dir, name string, notBefore, notAfter time.Time) config.TLS {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: notBefore, NotAfter: notAfter, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	tc := config.TLS{Cert: filepath.Join(dir, name+".pem"), Key: filepath.Join(dir, name+".key")}
	for file, block := range map[string]*pem.Block{tc.Cert: {Type: "CERTIFICATE", Bytes: der}, tc.Key: {Type: "PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return tc
}

// TestMSRPSPeerBehindRelayFingerprint: a client behind an msrps relay puts its own certificate's a=fingerprint
// in its SDP, but the gateway's MSRP connection is with the relay, which never sees the SDP: the fingerprint
// says nothing about the relay's certificate (PROTOCOL.md: fingerprints only work peer-to-peer, RFC 6135
// §4.3). The relay connecting to the gateway, with a certificate of its own, is served.
func TestMSRPSPeerBehindRelayFingerprint(t *testing.T) {
	gwPair, clientPair, relayPair := newTestPair(t), newTestPair(t), newTestPair(t)
	h := newHarness(t, withMSRPS(gwPair))
	alice := testpeer.NewPhone(t, "alice")
	relay := testpeer.NewTLSRelay(t, &tls.Config{Certificates: []tls.Certificate{relayPair.cert}})
	bob := testpeer.NewClientWith(t, "bob", testpeer.ClientConfig{
		TLS:         &tls.Config{Certificates: []tls.Certificate{clientPair.cert}, ClientAuth: tls.RequestClientCert},
		ClientTLS:   &tls.Config{Certificates: []tls.Certificate{clientPair.cert}, InsecureSkipVerify: true},
		Fingerprint: clientPair.fingerprint,
	})
	bob.SetRelay(relay)
	cs := bob.Call(h.udp(), alice.URI, "active")
	if r := cs.Send("text/plain", "via the tls relay"); r.StatusCode != 200 {
		t.Fatalf("SEND through the relay answered %+v", r)
	}
	if m := alice.Recv(); string(m.Body()) != "via the tls relay" {
		t.Fatalf("alice got %q", m.Body())
	}
	cs.Bye()
}

// TestACKTLSHandshakeBounded: an ACK goes straight to the transport, on a connection of its own when its
// target (a 2xx's Contact) is new; a TLS server there that accepts and never finishes the handshake does not
// hold the goroutine sending it, which the session's setup and the gateway's shutdown wait for: the
// handshake is bounded (Timer B), and ends with the gateway.
func TestACKTLSHandshakeBounded(t *testing.T) {
	gwPair := newTestPair(t)
	h := newHarness(t, func(c *config.Config) {
		c.SIP.Listen = append(c.SIP.Listen, config.Listen{Network: "tls", Addr: "127.0.0.2:0"})
		c.SIP.TLS = config.TLS{Cert: gwPair.certFile, Key: gwPair.keyFile}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // accepts, and never says a word
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	var target sip.Uri
	if err := sip.ParseUri("sips:bob@"+ln.Addr().String(), &target); err != nil {
		t.Fatal(err)
	}
	ack := sip.NewRequest(sip.ACK, target)
	ack.SetTransport("TLS")
	done := make(chan error, 1)
	go func() { done <- h.gw.client.WriteRequest(ack) }()
	select {
	case err := <-done:
		t.Fatalf("ACK written (%v) to a server that never finished the handshake", err)
	case <-time.After(300 * time.Millisecond):
	}
	h.gw.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("ACK written to a server that never finished the handshake")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the ACK's TLS handshake outlived the gateway")
	}
}

// TestMSRPSEarlyBindingCheckedAgainstAnswer: a connection that binds the gateway's session before the peer's
// SDP answer is known (here between the 200 to a late-offer INVITE, which carries the gateway's path, and the
// ACK with the answer) is checked against that answer once it comes, as one after it would be: a certificate
// that is not the answer's a=fingerprint, or a From-Path that is not its a=path, loses the binding. Before,
// such a connection kept the session: the gateway, the active side, found it bound and sent the session's
// messages to whoever had connected first, never to the peer the answer named (RFC 4975 §14.4).
func TestMSRPSEarlyBindingCheckedAgainstAnswer(t *testing.T) {
	gwPair, bobPair, roguePair := newTestPair(t), newTestPair(t), newTestPair(t)
	h := newHarness(t, withMSRPS(gwPair))
	alice := testpeer.NewPhone(t, "alice")
	bob := newTLSClient(t, "bob", bobPair, bobPair.fingerprint)

	req, err := testpeer.NewRequest(sip.INVITE, bob.URI, alice.URI, "", nil) // late offer
	if err != nil {
		t.Fatal(err)
	}
	offer, dlg := inviteAnswered(t, h, bob.Client, req)
	path, err := msrp.ParseSDPPath(strings.Join(offer.Path, " "))
	if err != nil {
		t.Fatal(err)
	}

	// Someone who saw the 200 connects first, with a certificate of its own, and binds the session.
	nc, err := tls.Dial("tcp", h.gw.MSRPAddr(), &tls.Config{Certificates: []tls.Certificate{roguePair.cert},
		InsecureSkipVerify: true}) //nolint:gosec // the test's rogue does not care who the gateway is
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	rogue := &rawMSRP{t: t, nc: nc, rd: msrp.NewReader(nc, msrp.Limits{})}
	from, _ := msrp.ParseURI("msrps://127.0.0.1:9/rogue;tcp")
	rogue.write(msrpFrame("SEND", "rogue1", path[0], from, []string{"Message-ID: rogue-mid", "Byte-Range: 1-0/0"}, "", '$'))
	if m := rogue.next(); m.StatusCode != 200 {
		t.Logf("the early binding was refused at once: %d", m.StatusCode)
	}

	// The answer in the ACK names bob's path and certificate; bob is passive, so the gateway connects to bob.
	cs := bob.NewSession()
	cs.MSRP.SetPeerPath(path)
	ackWith(t, dlg, bob.Media(cs, "passive"))
	select {
	case <-cs.MSRP.Bound():
	case <-time.After(waitFor):
		t.Fatal("the gateway never connected to the peer its SDP answer named: the early connection kept the session")
	}
	alice.Send(h.udp(), bob.URI, "text/plain", "for bob only")
	if got := string(cs.Recv().Body); got != "for bob only" {
		t.Fatalf("bob got %q", got)
	}
	nc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if m, err := rogue.rd.ReadMessage(); err == nil && m.Method == msrp.MethodSend && len(m.Body) > 0 {
		t.Fatalf("the early connection got the session's message %q", m.Body)
	}
}

// TestSIPCertificateValidityLoggedOnce: sip.tls.cert serves the tls listener and is also the client
// certificate of the connections the gateway opens; an expired one is still one problem, logged once at start
// (docs/OPERATIONS.md: one line per failure), not once per use.
func TestSIPCertificateValidityLoggedOnce(t *testing.T) {
	now := time.Now()
	cfg := testConfig()
	cfg.SIP.TLS = writeCertificate(t, t.TempDir(), "expired", now.Add(-2*time.Hour), now.Add(-time.Hour))
	cfg.SIP.Listen = append(cfg.SIP.Listen, config.Listen{Network: "tls", Addr: "127.0.0.1:0"})
	logs := newCapturedLog()
	gw, err := New(cfg, Options{Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	gw.Close()
	logs.mu.Lock()
	defer logs.mu.Unlock()
	n := 0
	for _, l := range *logs.lines {
		if l.msg == "TLS certificate expired" && l.attrs["key"] == "sip.tls.cert" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("logged %q for sip.tls.cert %d times, want once", "TLS certificate expired", n)
	}
}

// A gateway listening for SIP over TLS only, its sip.contact a sip: URI, advertises the tls listener with
// ;transport=tls: a sip: URI without a transport is reached over UDP (RFC 3263 §4.1), and a client's BYE to
// the gateway's Contact went over UDP to a port where nothing listens.
func TestTLSOnlyContact(t *testing.T) {
	gwPair, peerPair := newTestPair(t), newTestPair(t)
	h := newHarness(t, func(c *config.Config) {
		c.SIP.Listen = []config.Listen{{Network: "tls", Addr: "127.0.0.1:0"}}
		c.SIP.TLS = config.TLS{Cert: gwPair.certFile, Key: gwPair.keyFile, ClientCA: peerPair.certFile}
	})
	alice := newTLSPhone(t, "alice", &peerPair, gwPair.pool())
	bob := testpeer.NewClientWith(t, "bob", testpeer.ClientConfig{
		SIPTLS:       &tls.Config{Certificates: []tls.Certificate{peerPair.cert}},
		SIPClientTLS: &tls.Config{Certificates: []tls.Certificate{peerPair.cert}, RootCAs: gwPair.pool()},
	})
	res, err := sendTLS(alice, h.gw.SIPAddr("tls"), bob.URI+";transport=tls", "hello")
	if err != nil || res.StatusCode >= 300 {
		t.Fatalf("MESSAGE over TLS: %v %v", res, err)
	}
	cs := bob.WaitInvite()
	if got, want := cs.ServerDialog().InviteRequest.Contact().Address.String(), "sip:"+h.gw.SIPAddr("tls")+";transport=tls"; got != want {
		t.Errorf("the INVITE's Contact is %s, want %s", got, want)
	}
	if m := cs.Recv(); string(m.Body) != "hello" {
		t.Fatalf("bob got %q", m.Body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := cs.TryBye(ctx); err != nil {
		t.Fatalf("bob's BYE to the gateway's Contact: %v", err)
	}
	h.events.waitKind(t, event.SessionEnded)
}

// msrp.tls with a plain msrp:// listen URI is only our client certificate towards msrps peers: the SDP of a
// TCP/MSRP m-line carries no a=fingerprint, which would name a certificate no connection to us shows (RFC 4975
// §14.4).
func TestMSRPTLSWithPlainListenHasNoFingerprint(t *testing.T) {
	gwPair := newTestPair(t)
	h := newHarness(t, func(c *config.Config) {
		c.MSRP.Listen = "msrp://127.0.0.1:0;tcp"
		c.MSRP.TLS = config.TLS{Cert: gwPair.certFile, Key: gwPair.keyFile}
	})
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	alice.Send(h.udp(), bob.URI, "text/plain", "x")
	cs := bob.WaitInvite()
	body := cs.ServerDialog().InviteRequest.Body()
	m, err := sdp.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	cs.Recv()
	cs.Bye()
	if m.Secure {
		t.Fatalf("a plain msrp:// listener offered TLS:\n%s", body)
	}
	if len(m.Fingerprints) > 0 {
		t.Errorf("the TCP/MSRP offer (path %v) carries a=fingerprint %q:\n%s", m.Path, m.Fingerprints, strings.TrimSpace(string(body)))
	}
}
