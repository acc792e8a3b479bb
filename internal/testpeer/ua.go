package testpeer

import (
	"cmp"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// WaitFor is how long a peer waits for something that should happen before it fails the test. It is a bound
// on a hang, not a speed assertion.
const WaitFor = 10 * time.Second

// Logger returns a logger for peers: debug to stderr under `go test -v`, discarded otherwise.
func Logger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// NewUA starts a bare sipgo user agent for a peer the types of this package do not cover (one that answers
// INVITEs its own way, say), serving UDP and TCP on one ephemeral 127.0.0.1 port. register installs the
// handlers before serving starts; it gets the UA's server and client and the host:port it listens on, which
// NewUA returns too. Everything is released through t's Cleanup.
func NewUA(t testing.TB, name string, register func(srv *sipgo.Server, client *sipgo.Client, addr string)) string {
	t.Helper()
	return newUA(t, name, uaConfig{}, register)
}

// uaConfig is where and how a peer's UA listens; the zero value is UDP and TCP on 127.0.0.1.
type uaConfig struct {
	host      string      // loopback address to listen on and send from; "" is 127.0.0.1
	serverTLS *tls.Config // when set: listen for SIP over TLS only, with this
	clientTLS *tls.Config // for the TLS connections the UA makes
}

// newUA makes a sipgo UA serving on an ephemeral loopback port and returns its host:port. register installs
// the handlers before serving starts, so no request can meet a half-built peer (and the race detector stays
// quiet).
func newUA(t testing.TB, name string, cfg uaConfig, register func(srv *sipgo.Server, client *sipgo.Client, addr string)) string {
	t.Helper()
	host := cmp.Or(cfg.host, "127.0.0.1")
	uaOpts := []sipgo.UserAgentOption{sipgo.WithUserAgent(name)}
	if cfg.clientTLS != nil {
		uaOpts = append(uaOpts, sipgo.WithUserAgenTLSConfig(cfg.clientTLS))
	}
	ua, err := sipgo.NewUA(uaOpts...)
	if err != nil {
		t.Fatalf("testpeer: new UA %s: %v", name, err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatalf("testpeer: new server %s: %v", name, err)
	}
	clientOpts := []sipgo.ClientOption{sipgo.WithClientHostname(host)}
	if cfg.host != "" {
		// Requests leave from the peer's own address, not from 127.0.0.1 (its source address is the point).
		clientOpts = append(clientOpts, sipgo.WithClientConnectionAddr(host+":0"))
	}
	client, err := sipgo.NewClient(ua, clientOpts...)
	if err != nil {
		t.Fatalf("testpeer: new client %s: %v", name, err)
	}

	if cfg.serverTLS != nil {
		ln, err := tls.Listen("tcp", host+":0", cfg.serverTLS)
		if err != nil {
			t.Fatalf("testpeer: listen tls: %v", err)
		}
		addr := ln.Addr().String()
		register(srv, client, addr)
		go srv.ServeTLS(ln)
		t.Cleanup(func() { ln.Close(); ua.Close() })
		return addr
	}

	// UDP and TCP on the same port, as a phone listens: large MESSAGEs arrive over TCP (RFC 3428 §8).
	pc, ln, err := listenUDPAndTCP(host)
	if err != nil {
		t.Fatalf("testpeer: %v", err)
	}
	addr := pc.LocalAddr().String()
	register(srv, client, addr)
	go srv.ServeUDP(pc)
	go srv.ServeTCP(ln)
	t.Cleanup(func() { pc.Close(); ln.Close(); ua.Close() })
	return addr
}

// listenUDPAndTCP listens for UDP and TCP on one ephemeral port of host.
func listenUDPAndTCP(host string) (net.PacketConn, net.Listener, error) {
	for attempt := 0; ; attempt++ {
		pc, err := net.ListenPacket("udp", host+":0")
		if err != nil {
			return nil, nil, fmt.Errorf("listen udp: %w", err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if attempt == 20 {
			return nil, nil, fmt.Errorf("no port free on both udp and tcp: %w", err)
		}
	}
}

// tryRecv waits up to d for the next value on ch.
func tryRecv[T any](ch <-chan T, d time.Duration) (T, bool) {
	select { // what is already there first: with d == 0 the timer would race the channel
	case v := <-ch:
		return v, true
	default:
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case v := <-ch:
		return v, true
	case <-t.C:
		var zero T
		return zero, false
	}
}

// NewRequest builds a request from fromURI to toURI (its Request-URI and To) with a fresh From tag, the
// Content-Type ctype (none when empty) and body. The sipgo client that sends it adds Via, Call-ID, CSeq and
// Max-Forwards.
func NewRequest(method sip.RequestMethod, fromURI, toURI, ctype string, body []byte) (*sip.Request, error) {
	var ruri, from sip.Uri
	if err := sip.ParseUri(toURI, &ruri); err != nil {
		return nil, fmt.Errorf("testpeer: %s to %q: %w", method, toURI, err)
	}
	if err := sip.ParseUri(fromURI, &from); err != nil {
		return nil, fmt.Errorf("testpeer: %s from %q: %w", method, fromURI, err)
	}
	req := sip.NewRequest(method, ruri)
	fh := &sip.FromHeader{Address: from, Params: sip.NewParams()}
	fh.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(fh)
	req.AppendHeader(&sip.ToHeader{Address: ruri, Params: sip.NewParams()})
	if ctype != "" {
		req.AppendHeader(sip.NewHeader("Content-Type", ctype))
	}
	req.SetBody(body)
	return req, nil
}

// CallID returns a request's Call-ID value, or "".
func CallID(req *sip.Request) string {
	if h := req.CallID(); h != nil {
		return h.Value()
	}
	return ""
}

// Reason is the standard reason phrase for the codes the peers answer with.
func Reason(code int) string {
	switch code {
	case 200:
		return "OK"
	case 202:
		return "Accepted"
	case 404:
		return "Not Found"
	case 408:
		return "Request Timeout"
	case 413:
		return "Request Entity Too Large"
	case 415:
		return "Unsupported Media Type"
	case 480:
		return "Temporarily Unavailable"
	case 486:
		return "Busy Here"
	case 488:
		return "Not Acceptable Here"
	case 503:
		return "Service Unavailable"
	case 603:
		return "Decline"
	}
	return "Status"
}
