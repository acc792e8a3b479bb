package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/internal/certs"
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
	certFile, keyFile, err := certs.WriteTemp(t.TempDir())
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
// certificate, and advertises fp as its a=fingerprint ("" for none).
type tlsClient struct {
	*client
	fp      string
	gwFP    chan string // the a=fingerprint of each SDP the gateway sent
	verify  bool        // check the gateway's certificate against its a=fingerprint
	connErr chan error  // result of the client's own Connect (active answers)
}

func newTLSClient(t *testing.T, user string, own testPair, fp string) *tlsClient {
	t.Helper()
	srvConf := &tls.Config{Certificates: []tls.Certificate{own.cert}, ClientAuth: tls.RequestClientCert}
	cliConf := &tls.Config{Certificates: []tls.Certificate{own.cert}, InsecureSkipVerify: true}
	ep := msrp.NewEndpoint(msrp.Config{CheckFromPath: true, TLSConfig: srvConf, ClientTLSConfig: cliConf, Logger: testLogger(t).With("who", "client-msrps")})
	if _, err := ep.Listen("tcp", "127.0.0.1:0", true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close() })
	tc := &tlsClient{
		client: &client{t: t, ep: ep, invites: make(chan *clientSession, 16), answer: 200, setup: "passive",
			acceptTypes: []string{"text/plain"}, dialogs: make(map[string]*clientSession)},
		fp: fp, gwFP: make(chan string, 16), verify: true, connErr: make(chan error, 16),
	}
	c := tc.client
	newUA(t, "client-"+user, func(srv *sipgo.Server, sc *sipgo.Client, addr string) {
		c.addr, c.uri = addr, "sip:"+user+"@"+addr
		var contact sip.Uri
		sip.ParseUri(c.uri, &contact)
		c.sipc = sc
		c.dua = &sipgo.DialogUA{Client: sc, ContactHDR: sip.ContactHeader{Address: contact}}
		srv.OnInvite(tc.onInvite)
		srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) {
			if cs := c.dialog(req); cs != nil && cs.uas != nil {
				cs.uas.ReadAck(req, tx)
			}
		})
		srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
			cs := c.dialog(req)
			if cs == nil {
				tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
				return
			}
			tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
			cs.byes <- struct{}{}
			cs.ms.Close()
		})
	})
	return tc
}

// media is the client's SDP: msrps path, TCP/TLS/MSRP, its a=fingerprint.
func (tc *tlsClient) media(cs *clientSession, setup string) *sdp.Media {
	m := tc.client.media(cs, setup)
	m.Secure = true
	m.Fingerprint = tc.fp
	return m
}

// gatewayMedia records and checks the gateway's SDP and makes the client check the gateway's certificate.
func (tc *tlsClient) gatewayMedia(cs *clientSession, body []byte) (*sdp.Media, error) {
	m, err := sdp.Parse(body)
	if err != nil {
		return nil, err
	}
	tc.gwFP <- m.Fingerprint
	path, err := msrp.ParsePath(strings.Join(m.Path, " "))
	if err != nil {
		return nil, err
	}
	cs.ms.SetPeerPath(path)
	if tc.verify {
		fp := m.Fingerprint
		cs.ms.SetPeerVerifier(func(st *tls.ConnectionState, dialled bool) error {
			if st == nil || len(st.PeerCertificates) == 0 {
				return errNoPeerCertificate
			}
			return certs.Match(fp, st.PeerCertificates[0])
		})
	}
	return m, nil
}

func (tc *tlsClient) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	c := tc.client
	cs := c.newSession()
	if _, err := tc.gatewayMedia(cs, req.Body()); err != nil {
		tx.Respond(sip.NewResponseFromRequest(req, 488, "Not Acceptable Here", nil))
		return
	}
	dlg, err := c.dua.ReadInvite(req, tx)
	if err != nil {
		c.t.Errorf("ReadInvite: %v", err)
		return
	}
	cs.uas = dlg
	c.mu.Lock()
	c.dialogs[callID(req)] = cs
	setup := c.setup
	c.mu.Unlock()
	c.invites <- cs
	if err := dlg.RespondSDP(tc.media(cs, setup).Marshal(1, 1)); err != nil {
		return
	}
	if setup == "active" {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		tc.connErr <- cs.ms.Connect(ctx)
	}
}

// invite starts a session-first chat over msrps; the client connects when the gateway answers passive.
func (tc *tlsClient) invite(gwAddr, toURI string) (*clientSession, error) {
	c := tc.client
	cs := c.newSession()
	var ruri, from sip.Uri
	sip.ParseUri(toURI, &ruri)
	sip.ParseUri(c.uri, &from)
	req := sip.NewRequest(sip.INVITE, ruri)
	fh := &sip.FromHeader{Address: from, Params: sip.NewParams()}
	fh.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(fh)
	req.AppendHeader(&sip.ToHeader{Address: ruri, Params: sip.NewParams()})
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(tc.media(cs, "active").Marshal(2, 1))
	req.SetDestination(gwAddr)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	dlg, err := c.dua.WriteInvite(ctx, req)
	if err != nil {
		return nil, err
	}
	if err := dlg.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		return nil, err
	}
	cs.uac = dlg
	c.mu.Lock()
	c.dialogs[callID(req)] = cs
	c.mu.Unlock()
	if err := dlg.Ack(ctx); err != nil {
		return nil, err
	}
	if _, err := tc.gatewayMedia(cs, dlg.InviteResponse.Body()); err != nil {
		return nil, err
	}
	return cs, cs.ms.Connect(ctx)
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
			alice := newPhone(t, "alice")
			bob := newTLSClient(t, "bob", clientPair, tc.fp)
			res := alice.send(h.udp(), bob.uri, "text/plain", "over tls")
			if res.StatusCode >= 300 {
				t.Fatalf("MESSAGE answered %d", res.StatusCode)
			}
			cs := bob.waitInvite()
			if got := <-bob.gwFP; got != gwPair.fingerprint {
				t.Errorf("gateway's a=fingerprint %q, want %q", got, gwPair.fingerprint)
			}
			if p := cs.ms.PeerPath(); len(p) != 1 || !p[0].Secure {
				t.Errorf("gateway's path %v, want one msrps URI", p)
			}
			if !tc.ok {
				e := h.events.waitKind(t, event.SetupFailed)
				if e.Code != 480 {
					t.Errorf("setup_failed %d %s, want 480", e.Code, e.Reason)
				}
				cs.waitBye()
				select {
				case m := <-cs.inbox:
					t.Fatalf("the client got %q over a refused connection", m.Body)
				default:
				}
				return
			}
			if m := cs.recv(); string(m.Body) != "over tls" {
				t.Fatalf("client got %q", m.Body)
			}
			if r := cs.send("text/plain", "back over tls"); r.StatusCode != 200 {
				t.Fatalf("SEND answered %+v", r)
			}
			if m := alice.recv(); string(m.Body()) != "back over tls" {
				t.Fatalf("alice got %q", m.Body())
			}
			cs.bye() // before the client's cleanup, so the gateway has no BYE left to send to a closed UA
		})
	}
}

// TestMSRPOverTLSSessionFirst: the client INVITEs with a=setup:active and connects to the gateway's msrps
// listener showing its certificate; the gateway binds the session only when that certificate matches the
// client's a=fingerprint, else it refuses the binding (403), ends the session and sends BYE.
func TestMSRPOverTLSSessionFirst(t *testing.T) {
	gwPair, clientPair, otherPair := newTestPair(t), newTestPair(t), newTestPair(t)
	h := newHarness(t, withMSRPS(gwPair))
	alice := newPhone(t, "alice")

	bob := newTLSClient(t, "bob", clientPair, clientPair.fingerprint)
	cs, err := bob.invite(h.udp(), alice.uri)
	if err != nil {
		t.Fatalf("session-first over msrps: %v", err)
	}
	if got := <-bob.gwFP; got != gwPair.fingerprint {
		t.Errorf("gateway's answer has a=fingerprint %q, want %q", got, gwPair.fingerprint)
	}
	if r := cs.send("text/plain", "hello alice"); r.StatusCode != 200 {
		t.Fatalf("SEND answered %+v", r)
	}
	if m := alice.recv(); string(m.Body()) != "hello alice" {
		t.Fatalf("alice got %q", m.Body())
	}

	carol := newTLSClient(t, "carol", clientPair, otherPair.fingerprint)
	cs2, err := carol.invite(h.udp(), alice.uri)
	var se *msrp.StatusError
	if cs2 == nil || !asStatus(err, &se) || se.Code != 403 {
		t.Fatalf("connect with a certificate that is not the a=fingerprint: %v, want the gateway's 403", err)
	}
	cs2.waitBye()
	alice.quiet(100 * time.Millisecond)
	cs.bye()
}

// TestMSRPSNeedsCertificate: msrps:// without msrp.tls does not start.
func TestMSRPSNeedsCertificate(t *testing.T) {
	cfg := testConfig()
	cfg.MSRP.Listen = "msrps://127.0.0.1:0;tcp"
	gw, err := New(cfg, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(); err == nil || !strings.Contains(err.Error(), "msrp.tls") {
		gw.Close()
		t.Fatalf("Start: %v, want an error naming msrp.tls", err)
	}
	cfg.MSRP.TLS = config.TLS{Cert: filepath.Join(t.TempDir(), "missing.pem"), Key: "missing.key"}
	gw, _ = New(cfg, Options{Logger: testLogger(t)})
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

var _ = os.Remove
var _ = net.Listen
