package msrp

import (
	"crypto/tls"
	"errors"
)

// ErrPeerRejected is wrapped by Connect's error when the session's PeerVerifier refused the connection.
var ErrPeerRejected = errors.New("msrp: peer rejected by the session's verifier")

// PeerVerifier checks a connection before a session binds to it. state is the connection's TLS state (nil
// for plain TCP); dialled says whether we opened the connection (then the peer is the TLS server and state
// holds its certificate chain) or accepted it (the peer is the TLS client and shows a certificate only if
// it chose to). A non-nil error refuses the binding: Connect returns it wrapped in ErrPeerRejected, and a
// peer's first request on a connection it opened gets 403 (the session stays unbound).
//
// It runs on the connection's reader goroutine, in Connect, or in SetPeerPath (for a connection that bound
// the session before its peer's path was set: the caller's goroutine, which may hold its own locks), without
// any lock of the stack held, and is called for every binding, also of a connection reused from another
// session: with self-signed certificates each session checks its own peer's SDP a=fingerprint (RFC 4975
// §14.4).
type PeerVerifier func(state *tls.ConnectionState, dialled bool) error

// SetPeerVerifier installs v (nil removes it) for the session's later bindings.
func (s *Session) SetPeerVerifier(v PeerVerifier) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.verify = v
}

// verifyPeer runs the session's verifier, if any, for c.
func (s *Session) verifyPeer(c *conn) error {
	s.mu.Lock()
	v := s.verify
	s.mu.Unlock()
	if v == nil {
		return nil
	}
	return v(c.tlsState(), c.dialled)
}

// tlsState returns the connection's TLS state after its handshake, or nil for plain TCP.
func (c *conn) tlsState() *tls.ConnectionState {
	tc, ok := c.nc.(*tls.Conn)
	if !ok {
		return nil
	}
	st := tc.ConnectionState()
	return &st
}
