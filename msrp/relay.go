package msrp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"time"

	"github.com/icholy/digest"
)

// ErrNoUsePath is returned by Endpoint.Relay when the relay's 200 to AUTH carries no usable Use-Path.
var ErrNoUsePath = errors.New("msrp: relay's 200 to AUTH has no usable Use-Path")

// ErrPlainAuth is returned by Endpoint.Relay when a relay reached over plain TCP (msrp://) asks for
// credentials and they do not allow it (Credentials.AllowPlainTCP): RFC 4976 §8 sends AUTH over TLS only.
var ErrPlainAuth = errors.New("msrp: relay asks for credentials over plain TCP (msrps:// relays only, or Credentials.AllowPlainTCP)")

// Credentials answer a relay's Digest challenge to AUTH (RFC 4976 §5.1: HTTP Digest, RFC 2617, with method
// AUTH and the AUTH's To-Path URI as digest-uri).
type Credentials struct {
	Username, Password string
	// AllowPlainTCP answers the challenge of a relay reached over plain TCP (msrp://), where anyone on the path
	// can read the Digest answer and replay it within its nonce. For lab and test relays: RFC 4976 §8 sends
	// AUTH over TLS only, and without this the answer is sent only to msrps:// relays.
	AllowPlainTCP bool
}

// answer is the Authorization value for challenge (a WWW-Authenticate value) to an AUTH sent to to.
func (c *Credentials) answer(challenge string, to URI) (string, error) {
	chal, err := digest.ParseChallenge(challenge)
	if err != nil {
		return "", fmt.Errorf("msrp: relay's WWW-Authenticate %q: %w", challenge, err)
	}
	d, err := digest.Digest(chal, digest.Options{Method: methodAuth, URI: to.String(), Username: c.Username, Password: c.Password})
	if err != nil {
		return "", fmt.Errorf("msrp: digest for realm %q: %w", chal.Realm, err)
	}
	return d.String(), nil
}

// Relay is a client's connection to the MSRP relay it sits behind (RFC 4976 §5): a connection the client
// opened and authorised with AUTH, and the Use-Path the relay granted on it. Sessions made with NewSession
// advertise that path, send everything over that connection through the relay, and receive on it what the
// relay forwards to them: a client that accepts no connection of its own can chat.
//
// The grant is not refreshed before Expires: make a new Relay by then.
type Relay struct {
	e       *Endpoint
	c       *conn
	uri     URI
	usePath []URI
	expires time.Duration
}

// Relay opens a connection to the relay at relay (TLS for msrps, with Config.ClientTLSConfig), sends AUTH on
// it (To-Path the relay's URI, From-Path a URI of ours) and returns once the relay answered 200 with a
// Use-Path. A 401 is answered once with cred (a second AUTH carrying the Digest answer to its challenge) when
// cred is not nil. A relay that answers anything else gives a *StatusError (a 401 without cred, or a second
// one, included), one whose 200 has no Use-Path ErrNoUsePath; the connection is then closed. ctx bounds the
// dial and the AUTH transactions.
func (e *Endpoint) Relay(ctx context.Context, relay URI, cred *Credentials) (*Relay, error) {
	if relay.Transport != "tcp" {
		return nil, fmt.Errorf("%w %q in %s", ErrUnsupported, relay.Transport, relay.String())
	}
	if relay.Port == 0 {
		// DNS SRV for relays (RFC 4976 §6.2) is not done.
		return nil, fmt.Errorf("msrp: relay %s: %w", relay.String(), ErrNoPort)
	}
	if e.isClosed() {
		return nil, ErrClosed
	}
	nc, err := e.dialNet(ctx, relay)
	if err != nil {
		return nil, err
	}
	if err := e.verifyRelay(nc, relay); err != nil {
		_ = nc.Close()
		return nil, err
	}
	r := &Relay{e: e, uri: relay}
	rd, err := r.auth(ctx, nc, cred)
	if err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("msrp: AUTH to relay %s: %w", relay.String(), err)
	}
	c := newConn(e, nc, "")
	c.dialled, c.relay, c.rd = true, true, rd
	if err := e.addConn(c); err != nil {
		_ = nc.Close()
		return nil, err
	}
	c.log.Debug("msrp: relay connection authorised", "relay", relay.String(), "use_path", FormatPath(r.usePath),
		"expires", r.expires)
	c.start()
	r.c = c
	return r, nil
}

// verifyRelay checks an msrps relay's certificate for its host when the client TLS config leaves certificate
// checks to each session (InsecureSkipVerify: a session checks its peer's a=fingerprint, RFC 4975 §14.4). A
// relay is no SDP peer and has no fingerprint: nothing else would check it, and a client authenticates its
// relay by the relay's certificate (RFC 4976).
func (e *Endpoint) verifyRelay(nc net.Conn, relay URI) error {
	tc, ok := nc.(*tls.Conn)
	cfg := e.cfg.ClientTLSConfig
	if !ok || cfg == nil || !cfg.InsecureSkipVerify {
		return nil // plain TCP, or the handshake checked it already
	}
	st := tc.ConnectionState()
	if len(st.PeerCertificates) == 0 {
		return fmt.Errorf("msrp: relay %s: no certificate", relay.String())
	}
	inter := x509.NewCertPool()
	for _, c := range st.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{DNSName: relay.Host, Roots: cfg.RootCAs, Intermediates: inter}
	if _, err := st.PeerCertificates[0].Verify(opts); err != nil {
		return fmt.Errorf("msrp: relay %s: certificate: %w", relay.String(), err)
	}
	return nil
}

// auth runs the AUTH transaction on nc before the connection has goroutines of its own, and returns the
// Reader that read the answer: it may hold what the relay sent next.
func (r *Relay) auth(ctx context.Context, nc net.Conn, cred *Credentials) (*Reader, error) {
	if _, ok := ctx.Deadline(); !ok {
		_ = nc.SetDeadline(time.Now().Add(r.e.cfg.TransactionTimeout))
	}
	// ctx ending unblocks the socket; the error that follows is then ctx's.
	unblocked := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = nc.SetDeadline(time.Unix(1, 0))
		close(unblocked)
	})
	defer stop()

	from := r.e.fallbackURI()
	from.Secure = r.uri.Secure
	from.SessionID = NewSessionID()
	req := &Message{Method: methodAuth, ToPath: []URI{r.uri}, FromPath: []URI{from}, Flag: '$'}
	if err := WriteMessage(nc, req); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	rd := NewReader(nc, r.e.cfg.Limits)
	challenged := false
	for {
		m, err := rd.ReadMessage()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		if m.IsRequest() || m.TransactionID != req.TransactionID {
			continue // nothing is addressed to us before the relay granted a path
		}
		if m.StatusCode == 401 && cred != nil && !challenged {
			// The usual first answer (RFC 4976 §5.1): AUTH again, with the Digest answer, on the same connection.
			challenged = true
			if !req.ToPath[0].Secure && !cred.AllowPlainTCP {
				return nil, ErrPlainAuth
			}
			authz, err := cred.answer(m.Header(HdrWWWAuthenticate), req.ToPath[0])
			if err != nil {
				return nil, err
			}
			req.TransactionID = ""
			req.Headers = []Header{{HdrAuthorization, authz}}
			if err := WriteMessage(nc, req); err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				return nil, err
			}
			continue
		}
		if m.StatusCode != 200 {
			return nil, &StatusError{Code: m.StatusCode, Comment: m.Comment}
		}
		// Its URIs go into our sessions' a=path, where each carries a port (RFC 4975 §8.2, RFC 4976 §5.1).
		up, err := ParseSDPPath(m.Header(HdrUsePath))
		if err != nil || len(up) == 0 {
			return nil, fmt.Errorf("%w: %q", ErrNoUsePath, m.Header(HdrUsePath))
		}
		r.usePath = up
		// Expires is 1*DIGIT: a grant too long for a Duration is the longest one, not a wrapped one.
		if s, err := strconv.ParseInt(m.Header(HdrExpires), 10, 64); (err == nil || errors.Is(err, strconv.ErrRange)) && s > 0 {
			r.expires = time.Duration(math.MaxInt64)
			if s < math.MaxInt64/int64(time.Second) {
				r.expires = time.Duration(s) * time.Second
			}
		}
		if !stop() {
			<-unblocked // ctx ended just now: the deadline it set must not outlive the AUTH
		}
		_ = nc.SetDeadline(time.Time{})
		return rd, nil
	}
}

// URI is the relay's URI Relay was given.
func (r *Relay) URI() URI { return r.uri }

// UsePath is the Use-Path of the relay's 200 to our AUTH: the relays our requests go through, nearest first.
func (r *Relay) UsePath() []URI { return append([]URI(nil), r.usePath...) }

// Expires is how long the relay grants the Use-Path for (its 200's Expires), 0 when it did not say.
func (r *Relay) Expires() time.Duration { return r.expires }

// NewSession creates a session behind the relay, routable at once and bound to the relay's connection: its
// LocalPath starts with the relay's URIs, its requests go to the relay with To-Path the Use-Path followed by
// the peer's path, and it takes requests on that connection only. A session made after the connection was
// lost or closed is closed.
func (r *Relay) NewSession(h Handler) *Session {
	e := r.e
	s := &Session{e: e, h: h, relay: r, conn: r.c, bound: make(chan struct{})}
	close(s.bound)
	e.mu.Lock()
	for {
		s.id = NewSessionID()
		if e.sessions[s.id] == nil {
			break
		}
	}
	s.local = URI{Secure: r.uri.Secure, Host: e.advHost, Port: e.advPort, SessionID: s.id, Transport: "tcp"}
	e.mu.Unlock()
	if s.local.Port == 0 {
		// No listener: nobody connects to the URI, it only names the session; but a URI of an SDP a=path carries
		// a port (RFC 4975 §8.2), so it names where we sit on the relay's connection.
		if h, p, err := net.SplitHostPort(r.c.nc.LocalAddr().String()); err == nil {
			if s.local.Host == "" {
				s.local.Host = h
			}
			s.local.Port, _ = strconv.Atoi(p)
		}
	}
	if s.local.Host == "" {
		s.local.Host = "invalid"
	}
	s.path = []URI{s.local}
	// Bound before it is routable, so that no request can bind it passively meanwhile.
	if !r.c.addSession(s) {
		s.conn, s.closed = nil, true
		return s
	}
	e.mu.Lock()
	closed := e.closed
	if !closed {
		e.sessions[s.id] = s
	}
	e.mu.Unlock()
	if closed {
		s.mu.Lock()
		s.conn, s.closed = nil, true
		s.mu.Unlock()
		r.c.removeSession(s)
	}
	return s
}

// Close closes the connection to the relay; the sessions still on it get HandleClose with ErrConnLost.
func (r *Relay) Close() { r.c.close(nil) }
