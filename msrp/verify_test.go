package msrp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"testing"
)

// verifyLog records what a PeerVerifier was shown and answers with err.
type verifyLog struct {
	mu      sync.Mutex
	calls   int
	dialled []bool
	certs   []int
	err     error
}

func (v *verifyLog) verifier() PeerVerifier {
	return func(st *tls.ConnectionState, dialled bool) error {
		v.mu.Lock()
		defer v.mu.Unlock()
		v.calls++
		v.dialled = append(v.dialled, dialled)
		n := -1 // plain TCP
		if st != nil {
			n = len(st.PeerCertificates)
		}
		v.certs = append(v.certs, n)
		return v.err
	}
}

// TestPeerVerifier: the verifier sees each binding with the connection's TLS state, on the dialling side
// (the server's certificate) and on the accepting side (a client certificate when one is shown); refusing
// fails Connect with ErrPeerRejected and the passive binding with 403, and nothing is delivered.
func TestPeerVerifier(t *testing.T) {
	srv, cli := selfSigned(t)
	// Mutual TLS: the acceptor asks for a client certificate, the dialler shows the same self-signed one.
	srv = srv.Clone()
	srv.ClientAuth = tls.RequestClientCert
	cli = cli.Clone()
	cli.Certificates = srv.Certificates

	ea := newEP(t, Config{TLSConfig: srv, ClientTLSConfig: cli}, true)
	eb := newEP(t, Config{TLSConfig: srv, ClientTLSConfig: cli}, true)

	t.Run("accepted", func(t *testing.T) {
		var va, vb verifyLog
		ha, hb := newRec(), newRec()
		a, b := ea.NewSession(ha), eb.NewSession(hb)
		a.SetPeerVerifier(va.verifier())
		b.SetPeerVerifier(vb.verifier())
		a.SetPeerPath(b.LocalPath())
		b.SetPeerPath(a.LocalPath())
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := a.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		recv(t, b.Bound(), "passive bind")
		if r := sendWait(t, a, &Outgoing{ContentType: "text/plain", Body: []byte("hi")}); r.StatusCode != 200 {
			t.Fatalf("%+v", r)
		}
		va.mu.Lock()
		vb.mu.Lock()
		defer va.mu.Unlock()
		defer vb.mu.Unlock()
		if va.calls != 1 || !va.dialled[0] || va.certs[0] != 1 {
			t.Errorf("dialler's verifier: %d calls, dialled %v, certs %v; want 1 call, dialled, 1 certificate", va.calls, va.dialled, va.certs)
		}
		if vb.calls != 1 || vb.dialled[0] || vb.certs[0] != 1 {
			t.Errorf("acceptor's verifier: %d calls, dialled %v, certs %v; want 1 call, accepted, 1 client certificate", vb.calls, vb.dialled, vb.certs)
		}
	})

	t.Run("refused when dialling", func(t *testing.T) {
		va := verifyLog{err: errors.New("wrong fingerprint")}
		hb := newRec()
		a, b := ea.NewSession(newRec()), eb.NewSession(hb)
		a.SetPeerVerifier(va.verifier())
		a.SetPeerPath(b.LocalPath())
		b.SetPeerPath(a.LocalPath())
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		err := a.Connect(ctx)
		if !errors.Is(err, ErrPeerRejected) || !errors.Is(err, va.err) {
			t.Fatalf("Connect: %v, want ErrPeerRejected wrapping the verifier's error", err)
		}
		if err := a.Send(&Outgoing{ContentType: "text/plain", Body: []byte("x")}, nil); !errors.Is(err, ErrNotBound) {
			t.Fatalf("Send after a refused Connect: %v, want ErrNotBound", err)
		}
		select {
		case <-b.Bound():
			t.Fatal("the peer's session got bound although the dialler refused the connection")
		default:
		}
	})

	t.Run("refused when accepting", func(t *testing.T) {
		vb := verifyLog{err: errors.New("no such certificate")}
		hb := newRec()
		a, b := ea.NewSession(newRec()), eb.NewSession(hb)
		b.SetPeerVerifier(vb.verifier())
		a.SetPeerPath(b.LocalPath())
		b.SetPeerPath(a.LocalPath())
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		var se *StatusError
		if err := a.Connect(ctx); !errors.As(err, &se) || se.Code != 403 {
			t.Fatalf("Connect: %v, want the acceptor's 403", err)
		}
		select {
		case <-b.Bound():
			t.Fatal("refused session is bound")
		case m := <-hb.msgs:
			t.Fatalf("refused session delivered %q", m.Body)
		default:
		}
	})

	t.Run("plain TCP", func(t *testing.T) {
		var va verifyLog
		ep := newEP(t, Config{}, false)
		eq := newEP(t, Config{}, false)
		a, b := ep.NewSession(newRec()), eq.NewSession(newRec())
		a.SetPeerVerifier(va.verifier())
		a.SetPeerPath(b.LocalPath())
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := a.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		va.mu.Lock()
		defer va.mu.Unlock()
		if va.calls != 1 || va.certs[0] != -1 {
			t.Errorf("plain TCP: %d calls, certs %v; want 1 call with a nil TLS state", va.calls, va.certs)
		}
	})
}

// TestEarlyBindingCheckedBySetPeerPath: a connection that binds a session before its peer's path is known
// (the peer's first SEND overtaking the SDP answer) keeps it only if, once SetPeerPath names the peer, its
// From-Path is that path (with CheckFromPath) and the session's verifier takes it; otherwise the session is
// unbound, for the peer's own connection to bind.
func TestEarlyBindingCheckedBySetPeerPath(t *testing.T) {
	peer, _ := ParseURI("msrp://127.0.0.1:9/peer1;tcp")
	cases := []struct {
		name      string
		from      string
		verifyErr error
		kept      bool
	}{
		{"the peer", peer.String(), nil, true},
		{"another From-Path", "msrp://127.0.0.1:9/rogue;tcp", nil, false},
		{"verifier refuses", peer.String(), errors.New("not the a=fingerprint"), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEP(t, Config{CheckFromPath: true}, false)
			b := e.NewSession(newRec())
			p := dialRaw(t, e)
			p.write(fmt.Sprintf("MSRP bind0001 SEND\nTo-Path: %s\nFrom-Path: %s\nMessage-ID: m0\nByte-Range: 1-0/0\n-------bind0001$\n",
				b.LocalURI().String(), c.from))
			p.expect("bind0001", 200)
			recv(t, b.Bound(), "early bind")

			v := verifyLog{err: c.verifyErr}
			b.SetPeerVerifier(v.verifier())
			b.SetPeerPath([]URI{peer})
			select {
			case <-b.Bound():
				if !c.kept {
					t.Fatal("the early connection still holds the session")
				}
			default:
				if c.kept {
					t.Fatal("the peer's own early connection lost the session")
				}
			}
		})
	}
}
