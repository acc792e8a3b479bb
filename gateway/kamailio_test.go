package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/internal/testpeer"
	"github.com/msrpgw/msrpgw/msrp"
	"github.com/msrpgw/msrpgw/msrp/sdp"
)

// A real MSRP relay in the session-mode client's path: Kamailio's msrp module (RFC 4976), configured as its
// documentation's examples are (Digest on AUTH with the auth module, msrp_cmap_save, then msrp_cmap_lookup and
// msrp_relay for the rest). The client AUTHs to it and advertises a=path "kamailio client"; the gateway reaches
// the client only through it.

// kamailioConfig is the relay's configuration. Kamailio's examples tell the direction of a SEND or REPORT by
// the number of hops left, which fits two relays between two clients; here one relay serves one client and the
// gateway, so a frame that comes on a connection a client AUTHed on goes on by its To-Path (towards the gateway,
// on a connection Kamailio finds or opens), and any other goes to the client through the connection map. Every
// frame is logged, so the test log shows what Kamailio saw.
const kamailioConfig = `#!KAMAILIO
debug=2
log_stderror=yes
auto_aliases=no
dns=no
rev_dns=no
use_dns_cache=no
children=1
tcp_children=2
tcp_accept_no_cl=yes
listen=tcp:127.0.0.1:%[1]d

loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "htable.so"
loadmodule "auth.so"
loadmodule "msrp.so"

modparam("msrp", "cmap_size", 4)
modparam("htable", "htable", "clients=>size=4;autoexpire=3600;")
modparam("auth", "qop", "auth")

request_route {
	sl_send_reply("403", "No SIP Here");
	exit;
}

event_route[msrp:frame-in] {
	xinfo("MSRP frame from $msrp(srcaddr) (connection $msrp(conid)):\n$msrp(buf)\n");
	msrp_reply_flags("1");
	if (msrp_is_reply()) {
		msrp_relay();
		exit;
	}
	if ($msrp(method)=="AUTH") {
		if (!pv_www_authenticate("msrpgw.test", "%[2]s", "0", "$msrp(method)")) {
			if (auth_get_www_authenticate("msrpgw.test", "1", "$var(wauth)")) {
				msrp_reply("401", "Unauthorized", "$var(wauth)");
			} else {
				msrp_reply("500", "Server Error");
			}
			exit;
		}
		$sht(clients=>$msrp(conid)) = 1;
		msrp_cmap_save();
		exit;
	}
	if ($msrp(method)=="SEND" || $msrp(method)=="REPORT") {
		if ($sht(clients=>$msrp(conid)) != $null) {
			if ($msrp(method)=="SEND") {
				msrp_reply("200", "OK");
			}
			msrp_relay();
			exit;
		}
		if (msrp_cmap_lookup()) {
			if ($msrp(method)=="SEND") {
				msrp_reply("200", "OK");
			}
			msrp_relay_flags("1");
			msrp_relay();
		} else if ($msrp(method)=="SEND") {
			msrp_reply("481", "Session-does-not-exist");
		}
		exit;
	}
	msrp_reply("501", "Request-method-not-understood");
}
`

// kamailioPassword is what the relay takes for any user's Digest answer to AUTH.
const kamailioPassword = "relay-s3cret"

// kamailioUser are the credentials of the tests' clients for the relay.
var kamailioUser = &msrp.Credentials{Username: "bob", Password: kamailioPassword, AllowPlainTCP: true} // the test relay listens on plain TCP

// kamailio is a Kamailio relay running for one test.
type kamailio struct {
	// URI is where clients AUTH, msrp://127.0.0.1:PORT;tcp.
	URI  msrp.URI
	out  *syncBuffer
	stop func() // ends Kamailio, once; the test's end does too
}

// syncBuffer is Kamailio's output, written by os/exec's copying goroutine and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startKamailio runs Kamailio in the foreground on a free 127.0.0.1 TCP port with kamailioConfig, its files in
// a temporary directory, until the test ends; its log goes to the test's log then. The port is free when
// picked; when someone takes it before Kamailio binds it, Kamailio exits and another port is tried.
func startKamailio(t *testing.T) *kamailio {
	t.Helper()
	return startKamailioWith(t, kamailioConfig)
}

// startKamailioWith is startKamailio with config (kamailioConfig, edited) in its place.
func startKamailioWith(t *testing.T, config string) *kamailio {
	t.Helper()
	bin, err := exec.LookPath("kamailio")
	if err != nil {
		t.Fatal("kamailio is required (Debian package kamailio: apt-get install -y kamailio; `make test` installs it)")
	}
	for attempt := 1; ; attempt++ {
		k, exited := runKamailio(t, bin, config)
		if !exited {
			return k
		}
		if attempt == 3 {
			t.Fatalf("kamailio exited at start, %d times; the last time:\n%s", attempt, k.out)
		}
	}
}

// runKamailio starts Kamailio once and waits until it accepts TCP; exited says it ended first.
func runKamailio(t *testing.T, bin, config string) (k *kamailio, exited bool) {
	t.Helper()
	port := freeTCPPort(t)
	uri, err := msrp.ParseURI("msrp://127.0.0.1:" + strconv.Itoa(port) + ";tcp")
	if err != nil {
		t.Fatal(err)
	}
	k, exited = runKamailioProbe(t, bin, fmt.Sprintf(config, port, kamailioPassword), uri.Authority())
	k.URI = uri
	return k, exited
}

// runKamailioProbe starts Kamailio once with config, as it is, and waits until it accepts TCP on probe
// (host:port); exited says it ended first.
func runKamailioProbe(t *testing.T, bin, config, probe string) (k *kamailio, exited bool) {
	t.Helper()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "kamailio.cfg")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	k = &kamailio{out: &syncBuffer{}}
	// -DD: no daemon, the main process stays ours; -E: log to stderr; -Y: runtime files in dir.
	cmd := exec.Command(bin, "-f", cfgPath, "-Y", dir, "-DD", "-E")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = k.out, k.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its children are in its group, ended with it
	if err := cmd.Start(); err != nil {
		t.Fatalf("kamailio: %v", err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	var once sync.Once
	k.stop = func() {
		once.Do(func() {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-done
			}
			t.Logf("kamailio's log (%s):\n%s", probe, k.out)
		})
	}
	t.Cleanup(k.stop)
	deadline := time.Now().Add(waitFor)
	for {
		select {
		case <-done:
			return k, true
		default:
		}
		c, err := net.DialTimeout("tcp", probe, time.Second)
		if err == nil {
			c.Close()
			return k, false
		}
		if time.Now().After(deadline) {
			t.Fatalf("kamailio does not accept on %s: %v\n%s", probe, err, k.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freeTCPPort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// behindKamailio is a client whose sessions sit behind a Kamailio relay of their own, which it AUTHed to.
func behindKamailio(t *testing.T, user string) *testpeer.Client {
	t.Helper()
	k := startKamailio(t)
	c := testpeer.NewClient(t, user)
	r := c.AuthRelay(k.URI, kamailioUser)
	if up := r.UsePath(); len(up) != 1 || up[0].Authority() != k.URI.Authority() || up[0].SessionID == "" {
		t.Fatalf("Kamailio granted Use-Path %s, want one URI of its own with a session-id", msrp.FormatPath(up))
	}
	return c
}

// MESSAGE first: the gateway INVITEs the client, whose a=path is Kamailio's URI then its own; the SEND reaches
// the client through Kamailio, and in wait mode the MESSAGE gets 200 only from the client's success REPORT,
// back through Kamailio (Kamailio's own 200 to the SEND says only that it took it).
func TestKamailioMessageToClient(t *testing.T) {
	h := newHarness(t, relayWait)
	alice := testpeer.NewPhone(t, "alice")
	bob := behindKamailio(t, "bob")
	res := alice.Send(h.udp(), bob.URI, "text/plain", "through kamailio")
	if res.StatusCode != 200 {
		t.Fatalf("MESSAGE answered %d %s, want 200 from the success REPORT", res.StatusCode, res.Reason)
	}
	cs := bob.WaitInvite()
	m := cs.Recv()
	if string(m.Body) != "through kamailio" || !m.SuccessReport {
		t.Fatalf("bob got %q, Success-Report %v", m.Body, m.SuccessReport)
	}
	// Kamailio took itself off the To-Path and put itself in front of the From-Path (RFC 4976 §6.4).
	if want := append(cs.MSRP.LocalPath()[:1:1], cs.MSRP.PeerPath()...); !msrp.PathEqual(m.FromPath, want) {
		t.Fatalf("SEND came with From-Path %s, want %s: Kamailio's URI, then the gateway's", msrp.FormatPath(m.FromPath), msrp.FormatPath(want))
	}

	// And back: the client's SEND goes through Kamailio to the gateway, which MESSAGEs alice.
	if r := cs.Send("text/plain", "reply via kamailio"); r.StatusCode != 200 {
		t.Fatalf("SEND answered %+v", r)
	}
	if got := string(alice.Recv().Body()); got != "reply via kamailio" {
		t.Fatalf("alice got %q", got)
	}
}

// Session first: the client INVITEs the phone through the gateway, offering a=path Kamailio's URI then its own;
// its SEND reaches the phone, and the phone's MESSAGE reaches the client, both through Kamailio. The client is
// the active party, offering active or (the gateway answering passive to it) actpass: its first SEND makes
// Kamailio connect to the gateway, which binds the session to that connection. (The gateway connecting to
// Kamailio itself is TestKamailioMessageToClient's case.)
func TestKamailioClientCallsPhone(t *testing.T) {
	for _, setup := range []string{sdp.SetupActive, sdp.SetupActPass} {
		t.Run(setup, func(t *testing.T) {
			h := newHarness(t, relayWait)
			alice := testpeer.NewPhone(t, "alice")
			bob := behindKamailio(t, "bob")
			cs := bob.Call(h.udp(), alice.URI, setup)
			if r := cs.Send("text/plain", "hello phone"); r.StatusCode != 200 {
				t.Fatalf("SEND answered %+v", r)
			}
			if got := string(alice.Recv().Body()); got != "hello phone" {
				t.Fatalf("alice got %q", got)
			}
			if res := alice.Send(h.udp(), bob.URI, "text/plain", "hello client"); res.StatusCode != 200 {
				t.Fatalf("MESSAGE answered %d %s, want 200 from the success REPORT", res.StatusCode, res.Reason)
			}
			if m := cs.Recv(); string(m.Body) != "hello client" {
				t.Fatalf("bob got %q", m.Body)
			}
		})
	}
}

// What Kamailio does when the client does not take a message, and what the MESSAGE gets for it. Kamailio
// forwards the client's failure REPORT, which fails the MESSAGE with the mapped code. It reports nothing
// itself, though (RFC 4976 §6.4.1 wants a failure REPORT from the relay): the client's error response to the
// SEND it drops (the response's To-Path is Kamailio alone, so msrp_relay has nowhere to send it), and when the
// client's connection is gone msrp_relay fails after the 200 went out. Then only the gateway's deadline, twice
// msrp.transaction_timeout, ends the wait: 408.
func TestKamailioDeliveryFailures(t *testing.T) {
	cases := []struct {
		name  string
		setup func(cs *testpeer.ClientSession, relay *msrp.Relay)
		want  int
	}{
		{"client reports 415", func(cs *testpeer.ClientSession, _ *msrp.Relay) { cs.SetReportFailure(415) }, 415},
		{"client answers 415", func(cs *testpeer.ClientSession, _ *msrp.Relay) { cs.SetReply(415) }, 408},
		{"client gone", func(_ *testpeer.ClientSession, relay *msrp.Relay) { relay.Close() }, 408},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, func(cfg *config.Config) {
				cfg.Gateway.Message.Reply = "wait"
				cfg.Gateway.Message.ReplyWait = 5 * time.Second
				cfg.MSRP.TransactionTimeout = time.Second
			})
			alice := testpeer.NewPhone(t, "alice")
			k := startKamailio(t)
			bob := testpeer.NewClient(t, "bob")
			relay := bob.AuthRelay(k.URI, kamailioUser)
			if res := alice.Send(h.udp(), bob.URI, "text/plain", "set up"); res.StatusCode != 200 {
				t.Fatalf("first MESSAGE answered %d %s, want 200", res.StatusCode, res.Reason)
			}
			cs := bob.WaitInvite()
			cs.Recv()
			c.setup(cs, relay)
			start := time.Now()
			res := alice.Send(h.udp(), bob.URI, "text/plain", "not taken")
			if res.StatusCode != c.want {
				t.Fatalf("MESSAGE answered %d %s, want %d", res.StatusCode, res.Reason, c.want)
			}
			if d := time.Since(start); c.want == 408 && d < 2*time.Second {
				t.Fatalf("408 after %s, before the deadline", d)
			}
		})
	}
}

// Kamailio challenges AUTH with Digest (RFC 4976 §5.1): no credentials, or a wrong password, get no path.
func TestKamailioAuthRefused(t *testing.T) {
	k := startKamailio(t)
	bob := testpeer.NewClient(t, "bob")
	for _, cred := range []*msrp.Credentials{nil, {Username: "bob", Password: "wrong", AllowPlainTCP: true}} {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		r, err := bob.Endpoint.Relay(ctx, k.URI, cred)
		cancel()
		var se *msrp.StatusError
		if !errors.As(err, &se) || se.Code != 401 {
			t.Fatalf("AUTH with %+v: %v, %v; want 401", cred, r, err)
		}
	}
}

// A message larger than one chunk goes through Kamailio chunk by chunk (Kamailio relays each frame as it
// comes); the client reassembles it and its one success REPORT covers the whole message.
func TestKamailioChunkedMessage(t *testing.T) {
	h := newHarness(t, relayWait)
	alice := testpeer.NewPhone(t, "alice")
	bob := behindKamailio(t, "bob")
	body := strings.Repeat("0123456789abcdef", 400) // 6400 octets: four chunks of at most 2048
	if res := alice.Send(h.udp(), bob.URI, "text/plain", body); res.StatusCode != 200 {
		t.Fatalf("MESSAGE answered %d %s, want 200 from the success REPORT", res.StatusCode, res.Reason)
	}
	if m := bob.WaitInvite().Recv(); string(m.Body) != body || m.Chunks < 2 {
		t.Fatalf("bob got %d octets in %d chunks, want the %d sent, chunked", len(m.Body), m.Chunks, len(body))
	}
}

// Kamailio closes a TCP connection nothing was read from or written to for tcp_connection_lifetime (120 s by
// default). The gateway's connection to it carries only what the gateway sends: while the client talks and the
// page-mode user does not, the client's SENDs come on the connection Kamailio opened to the gateway, the
// gateway's one idles, and Kamailio closes it. The relay still forwards the client's requests to the session
// on its own connection: the session carries on over that one, it does not end (with a BYE to the client
// in the middle of its chat). Kamailio runs here with a lifetime of 1 s.
func TestKamailioClosesIdleGatewayConnection(t *testing.T) {
	cfg := strings.Replace(kamailioConfig, "tcp_accept_no_cl=yes\n", "tcp_accept_no_cl=yes\ntcp_connection_lifetime=1\n", 1)
	h := newHarness(t, relayWait)
	alice := testpeer.NewPhone(t, "alice")
	k := startKamailioWith(t, cfg)
	bob := testpeer.NewClient(t, "bob")
	bob.AuthRelay(k.URI, kamailioUser)
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "set up"); res.StatusCode != 200 {
		t.Fatalf("MESSAGE answered %d %s, want 200", res.StatusCode, res.Reason)
	}
	cs := bob.WaitInvite()
	cs.Recv()
	// The client talks (its own connection to Kamailio busy), the gateway only answers, on Kamailio's connection.
	for end := time.Now().Add(13 * time.Second); time.Now().Before(end); {
		if r := cs.Send("text/plain", "client talks"); r.StatusCode != 200 {
			t.Fatalf("SEND answered %+v", r)
		}
		alice.Recv()
		time.Sleep(300 * time.Millisecond)
	}
	if n := h.events.count(event.SessionEnded); n != 0 || cs.GotBye() {
		t.Fatalf("the session ended (%d session_ended events, BYE %v) while the client was talking", n, cs.GotBye())
	}
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "and back"); res.StatusCode != 200 {
		t.Fatalf("MESSAGE answered %d %s, want 200", res.StatusCode, res.Reason)
	}
	if m := cs.Recv(); string(m.Body) != "and back" {
		t.Fatalf("bob got %q", m.Body)
	}
}

// A chat through Kamailio where nobody says anything for longer than its tcp_connection_lifetime: Kamailio
// closes every connection nothing was read from or written to for that long, the gateway's to it, its own to
// the gateway and the client's, and the chat breaks (the session ends, or the client's next message is lost
// in Kamailio). msrp.keepalive's bodiless SENDs, which Kamailio forwards to the client, keep the whole path,
// though the client sends none of its own. Kamailio runs here with a lifetime of 1 s.
func TestKamailioQuietChatKeptAlive(t *testing.T) {
	cfg := strings.Replace(kamailioConfig, "tcp_accept_no_cl=yes\n", "tcp_accept_no_cl=yes\ntcp_connection_lifetime=1\n", 1)
	h := newHarness(t, func(c *config.Config) {
		relayWait(c)
		c.MSRP.KeepAlive = 300 * time.Millisecond
	})
	alice := testpeer.NewPhone(t, "alice")
	k := startKamailioWith(t, cfg)
	bob := testpeer.NewClient(t, "bob")
	bob.AuthRelay(k.URI, kamailioUser)
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "set up"); res.StatusCode != 200 {
		t.Fatalf("MESSAGE answered %d %s, want 200", res.StatusCode, res.Reason)
	}
	cs := bob.WaitInvite()
	cs.Recv()
	time.Sleep(10 * time.Second) // quiet: Kamailio would have closed every connection of the chat
	if n := h.events.count(event.SessionEnded); n != 0 || cs.GotBye() {
		t.Fatalf("the quiet session ended (%d session_ended events, BYE %v)", n, cs.GotBye())
	}
	if r := cs.Send("text/plain", "still there?"); r.StatusCode != 200 {
		t.Fatalf("SEND answered %+v", r)
	}
	if got := string(alice.Recv().Body()); got != "still there?" {
		t.Fatalf("alice got %q", got)
	}
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "yes"); res.StatusCode != 200 {
		t.Fatalf("MESSAGE answered %d %s, want 200", res.StatusCode, res.Reason)
	}
	if m := cs.Recv(); string(m.Body) != "yes" {
		t.Fatalf("bob got %q", m.Body)
	}
}
