package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/internal/certs"
	"github.com/msrpgw/msrpgw/msrp"
)

// This file holds the TLS of both sides (SPEC §8): the SIP tls listener and the connections the SIP client
// opens, and MSRP over TLS (msrps) with the SDP a=fingerprint check of RFC 4975 §14.4.

// errNoPeerCertificate: the peer's SDP promised a certificate (a=fingerprint) and its TLS showed none.
var errNoPeerCertificate = errors.New("the peer's SDP has a=fingerprint but its TLS shows no certificate")

// loadCertificate reads a certificate and key pair named by a tls: section. A certificate outside its validity
// period is loaded all the same (a peer that checks only its a=fingerprint takes it) and logged: a peer that
// verifies it fails the handshake, and the log says why before anyone asks.
func loadCertificate(section string, tc config.TLS, log *slog.Logger) (tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(tc.Cert, tc.Key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%s.cert %s / %s.key %s: %w", section, tc.Cert, section, tc.Key, err)
	}
	if problem := validityProblem(cert.Leaf, time.Now()); problem != "" {
		log.Warn("TLS certificate "+problem, "key", section+".cert", "file", tc.Cert,
			"not_before", cert.Leaf.NotBefore, "not_after", cert.Leaf.NotAfter)
	}
	return cert, nil
}

// validityProblem says how leaf is outside its validity period at now: "expired" or "not yet valid"; "" when
// it is within it (or unknown).
func validityProblem(leaf *x509.Certificate, now time.Time) string {
	switch {
	case leaf == nil:
		return ""
	case now.After(leaf.NotAfter):
		return "expired"
	case now.Before(leaf.NotBefore):
		return "not yet valid"
	}
	return ""
}

// loadCAPool reads a PEM file of CA certificates.
func loadCAPool(key, file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s %s: no PEM certificate in it", key, file)
	}
	return pool, nil
}

// sipServerTLS is the tls listener's configuration: sip.tls.cert/key (cert, as loadCertificate loaded it), and
// with sip.tls.client_ca, clients must show a certificate that CA signed.
func sipServerTLS(tc config.TLS, cert *tls.Certificate) (*tls.Config, error) {
	if cert == nil {
		return nil, errors.New("a tls listener needs sip.tls.cert and sip.tls.key")
	}
	conf := &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12}
	if tc.ClientCA != "" {
		pool, err := loadCAPool("sip.tls.client_ca", tc.ClientCA)
		if err != nil {
			return nil, err
		}
		conf.ClientCAs = pool
		conf.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return conf, nil
}

// sipClientTLS is the configuration of the TLS connections the gateway opens (requests to sips: URIs or
// with ;transport=tls). The server is verified against the system roots, or against sip.tls.client_ca when
// it is set: a deployment with its own CA uses it for both directions. Our certificate, when configured,
// is shown to servers that ask for one (cert, as loadCertificate loaded it; nil: none).
func sipClientTLS(tc config.TLS, cert *tls.Certificate) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if tc.ClientCA != "" {
		pool, err := loadCAPool("sip.tls.client_ca", tc.ClientCA)
		if err != nil {
			return nil, err
		}
		conf.RootCAs = pool
	}
	if cert != nil {
		conf.Certificates = []tls.Certificate{*cert}
	}
	return conf, nil
}

// msrpTLS is the MSRP endpoint's TLS: what it listens with, what it dials with, and the a=fingerprint of
// our certificate that goes into our SDP (none without one).
type msrpTLS struct {
	server, client *tls.Config
	fingerprints   []string
}

// loadMSRPTLS builds the MSRP TLS configuration from msrp.tls. The server asks for, but does not require,
// a client certificate: a peer that shows one is checked against its a=fingerprint. The client leaves the
// server check to each session's verifier (msrpPeerVerifier), because which certificate is right depends on
// the session: its peer's a=fingerprint, or else the usual CA and host name check.
func loadMSRPTLS(tc config.TLS, log *slog.Logger) (*msrpTLS, error) {
	m := &msrpTLS{client: &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Verified per session by msrpPeerVerifier before anything is sent on the connection.
		InsecureSkipVerify: true, //nolint:gosec // see above
	}}
	if tc.Cert == "" && tc.Key == "" {
		return m, nil
	}
	cert, err := loadCertificate("msrp.tls", tc, log)
	if err != nil {
		return nil, err
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("msrp.tls.cert %s: %w", tc.Cert, err)
		}
	}
	m.fingerprints = []string{certs.SHA256(leaf)}
	m.client.Certificates = []tls.Certificate{cert}
	m.server = &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		ClientAuth:   tls.RequestClientCert,
	}
	return m, nil
}

// verifyMSRPPeer checks the TLS state of a connection a session is about to use (RFC 4975 §14.4, §7.3 of
// PROTOCOL.md §1.10): with the peer's a=fingerprint lines, its certificate must be one they name (RFC 8122
// §5: by the strongest hash among them); without,
// a server we dialled must have a certificate valid for host under roots (nil: the system's), and a client
// that connected to us needs none. Plain TCP (msrp://) has nothing to check.
func verifyMSRPPeer(st *tls.ConnectionState, dialled bool, fingerprints []string, host string, roots *x509.CertPool) error {
	if st == nil {
		return nil
	}
	if len(st.PeerCertificates) == 0 {
		if len(fingerprints) > 0 || dialled {
			return errNoPeerCertificate
		}
		return nil
	}
	leaf := st.PeerCertificates[0]
	if len(fingerprints) > 0 {
		return certs.MatchAny(fingerprints, leaf)
	}
	if !dialled {
		return nil
	}
	inter := x509.NewCertPool()
	for _, c := range st.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: inter}); err != nil {
		return fmt.Errorf("no a=fingerprint, and the certificate does not verify for %s: %w", host, err)
	}
	return nil
}

// msrpPeerVerifier is the verifier of session s, whose dialog is cid, for the peer whose SDP gave
// fingerprint and first hop. A refusal is logged and, while the session is being set up, ends the wait for
// the peer's connection. It takes no lock of s: SetPeerPath runs it, with s.mu held by applyPeerMedia, for a
// connection that bound the session before the peer's SDP came.
func (g *Gateway) msrpPeerVerifier(s *Session, cid string, fingerprints []string, hop msrp.URI) msrp.PeerVerifier {
	return func(st *tls.ConnectionState, dialled bool) error {
		err := verifyMSRPPeer(st, dialled, fingerprints, hop.Host, nil)
		if err != nil {
			s.log.Warn("MSRP peer certificate refused", "err", err, "peer", hop.String(), "dialled", dialled,
				"call_id", cid, "msrp_session_id", s.msrpID())
			select {
			case s.peerRejected <- err:
			default:
			}
		}
		return err
	}
}
