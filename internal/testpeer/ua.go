package testpeer

import (
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

// newUA makes a sipgo UA serving UDP and TCP on one ephemeral loopback port. register installs the handlers
// before serving starts, so no request can meet a half-built peer (and the race detector stays quiet).
func newUA(t testing.TB, name string, register func(srv *sipgo.Server, client *sipgo.Client, addr string)) {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent(name))
	if err != nil {
		t.Fatalf("testpeer: new UA %s: %v", name, err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatalf("testpeer: new server %s: %v", name, err)
	}
	// UDP and TCP on the same port, as a phone listens: large MESSAGEs arrive over TCP (RFC 3428 §8).
	var pc net.PacketConn
	var ln net.Listener
	for attempt := 0; ; attempt++ {
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatalf("testpeer: listen udp: %v", err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		if attempt == 20 {
			t.Fatalf("testpeer: no port free on both udp and tcp: %v", err)
		}
	}
	client, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatalf("testpeer: new client %s: %v", name, err)
	}
	register(srv, client, pc.LocalAddr().String())
	go srv.ServeUDP(pc)
	go srv.ServeTCP(ln)
	t.Cleanup(func() { pc.Close(); ln.Close(); ua.Close() })
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
