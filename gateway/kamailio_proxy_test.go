package gateway

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/internal/testpeer"
	"github.com/msrpgw/msrpgw/msrp"
	"github.com/msrpgw/msrpgw/msrp/sdp"
)

// The gateway behind a real SIP proxy, as operators run it: Kamailio (tm, rr) in front, Record-Routing every
// dialog and forwarding the page-mode phones' MESSAGEs and the session-mode clients' INVITEs to the gateway,
// and the gateway's own MESSAGEs, INVITEs and BYEs coming back through it (sip.outbound_proxy). The proxy
// listens on two ports: the endpoints' side (where phones and clients send) and the gateway's side (the
// gateway's outbound proxy). A request that comes on the endpoints' side goes to the gateway, one that comes
// on the gateway's side goes to its Request-URI; requests in a dialog follow the route set (loose_route).
// The transports of the two sides are set apart, so that the proxy can switch between UDP and TCP, and with
// the sockets of the two sides differing Kamailio Record-Routes twice (one per side, RFC 3261 §16.6 step 4).

// kamailioProxyConfig is the proxy's configuration; {{…}} are filled in by startKamailioProxy.
const kamailioProxyConfig = `#!KAMAILIO
debug=2
log_stderror=yes
auto_aliases=no
dns=no
rev_dns=no
use_dns_cache=no
children=1
tcp_children=2
listen=udp:{{HOST}}:{{EP}}
listen=tcp:{{HOST}}:{{EP}}
listen=udp:{{HOST}}:{{GW}}
listen=tcp:{{HOST}}:{{GW}}

loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "pv.so"
loadmodule "xlog.so"
{{MODULES}}
request_route {
	xinfo("request from $proto:$si:$sp on port $Rp:\n$mb\n");
	if (!mf_process_maxfwd_header("10")) {
		sl_send_reply("483", "Too Many Hops");
		exit;
	}
	if (has_totag()) {
		if (loose_route()) {
			route(RELAY);
		}
		if (is_method("ACK") && t_check_trans()) {
			route(RELAY);
		}
		sl_send_reply("404", "Not Here");
		exit;
	}
	if (is_method("CANCEL")) {
		if (t_check_trans()) {
			route(RELAY);
		}
		exit;
	}
	remove_hf("Route");
	{{RR}}
	{{INITIAL}}
	if ($Rp == {{EP}}) {
		$du = "sip:{{GWADDR}};transport={{GWPROTO}}";
		force_send_socket({{GWPROTO}}:{{HOST}}:{{GW}});
	} else {
		$du = "sip:" + $rd + ":" + $rp + ";transport={{EPPROTO}}";
		force_send_socket({{EPPROTO}}:{{HOST}}:{{EP}});
	}
	route(RELAY);
}

route[RELAY] {
	if (!t_relay()) {
		sl_reply_error();
	}
	exit;
}

onreply_route {
	xinfo("reply from $proto:$si:$sp:\n$mb\n");
}
`

// kamailioProxy is a Kamailio SIP proxy running for one test.
type kamailioProxy struct {
	// EP is where the phones and clients send (host:port, UDP and TCP), GW where the gateway does.
	EP, GW string

	t        *testing.T
	bin, cfg string
	k        *kamailio
}

// restart stops the proxy and starts it again on the same ports, as an operator's restart does: every TCP
// connection to it is closed, its transactions are forgotten.
func (p *kamailioProxy) restart() {
	p.t.Helper()
	p.k.stop()
	k, exited := runKamailioProbe(p.t, p.bin, p.cfg, p.EP)
	if exited {
		p.t.Fatalf("kamailio exited at restart:\n%s", k.out)
	}
	p.k = k
}

// chat starts a chat between alice and bob through the proxy, flow "message first" (alice's MESSAGE makes the
// gateway INVITE bob) or "session first" (bob INVITEs alice through the gateway), and returns bob's session.
func (p *kamailioProxy) chat(alice *testpeer.Phone, bob *testpeer.Client, flow string) *testpeer.ClientSession {
	p.t.Helper()
	if flow == "session first" {
		return bob.Call(p.EP, alice.URI, sdp.SetupActive)
	}
	if res := alice.Send(p.EP, bob.URI, "text/plain", "hello client"); res.StatusCode != 200 {
		p.t.Fatalf("MESSAGE answered %d %s, want 200", res.StatusCode, res.Reason)
	}
	cs := bob.WaitInvite()
	if m := cs.Recv(); string(m.Body) != "hello client" {
		p.t.Fatalf("bob got %q", m.Body)
	}
	return cs
}

// proxyRoute is how the proxy reaches the gateway and the endpoints, "udp" or "tcp", and what it does besides
// routing: modules is configuration added after the modules, initial script run on every initial request
// once it is Record-Routed ({{EP}} and {{GW}} there are the proxy's ports).
type proxyRoute struct {
	gw, ep           string
	noRR             bool   // the proxy does not Record-Route: requests in a dialog go from UA to UA
	host             string // the proxy's loopback address ("": 127.0.0.1)
	modules, initial string
}

// behindKamailioProxy starts a gateway whose outbound proxy is a Kamailio proxy, and the proxy, which
// forwards to it over r.gw and to the endpoints over r.ep. The proxy's ports are picked before the gateway
// starts (its config names them); when someone takes one before Kamailio binds it, both start anew (the
// gateway that did not serve is closed at the test's end).
func behindKamailioProxy(t *testing.T, r proxyRoute, mutate func(*config.Config)) (*harness, *kamailioProxy) {
	t.Helper()
	bin, err := exec.LookPath("kamailio")
	if err != nil {
		t.Fatal("kamailio is required (Debian package kamailio: apt-get install -y kamailio; `make test` installs it)")
	}
	for attempt := 1; ; attempt++ {
		host := cmp.Or(r.host, "127.0.0.1")
		ep, gw := freeUDPTCPPort(t, host), freeUDPTCPPort(t, host)
		p := &kamailioProxy{EP: net.JoinHostPort(host, strconv.Itoa(ep)), GW: net.JoinHostPort(host, strconv.Itoa(gw))}
		h := newHarness(t, func(c *config.Config) {
			c.SIP.OutboundProxy = "sip:" + p.GW + ";lr;transport=" + r.gw
			if mutate != nil {
				mutate(c)
			}
		})
		rr := "record_route();"
		if r.noRR {
			rr = ""
		}
		cfg := strings.NewReplacer("{{MODULES}}", r.modules, "{{INITIAL}}", r.initial, "{{RR}}", rr).Replace(kamailioProxyConfig)
		cfg = strings.NewReplacer(
			"{{HOST}}", host, "{{EP}}", strconv.Itoa(ep), "{{GW}}", strconv.Itoa(gw),
			"{{GWADDR}}", h.gw.SIPAddr(r.gw), "{{GWPROTO}}", r.gw, "{{EPPROTO}}", r.ep,
		).Replace(cfg)
		k, exited := runKamailioProbe(t, bin, cfg, p.EP)
		if !exited {
			p.t, p.bin, p.cfg, p.k = t, bin, cfg, k
			return h, p
		}
		if attempt == 3 {
			t.Fatalf("kamailio exited at start, %d times; the last time:\n%s", attempt, k.out)
		}
	}
}

// freeUDPTCPPort is a port free for both UDP and TCP on host when picked.
func freeUDPTCPPort(t *testing.T, host string) int {
	t.Helper()
	for {
		pc, err := net.ListenPacket("udp", host+":0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		pc.Close()
		if err == nil {
			ln.Close()
			return pc.LocalAddr().(*net.UDPAddr).Port
		}
	}
}

// Every flow through the proxy, each way the proxy's two sides are reached, with and without Record-Route: a
// MESSAGE-first and a session-first chat both ways, a message too large for UDP among them (the gateway's
// MESSAGE goes to the proxy over TCP), ended by a BYE from either side, along the route set the proxy's
// Record-Route made or, without one, from UA to UA (the gateway's through its outbound proxy).
func TestKamailioProxy(t *testing.T) {
	routes := []proxyRoute{
		{gw: "udp", ep: "udp"}, {gw: "tcp", ep: "tcp"}, {gw: "tcp", ep: "udp"}, {gw: "udp", ep: "tcp"},
		{gw: "udp", ep: "udp", noRR: true}, {gw: "tcp", ep: "udp", noRR: true},
	}
	large := strings.Repeat("large message ", 150) // 2100 octets: over UDP's 1300 (RFC 3428 §8)
	for _, r := range routes {
		for _, flow := range []string{"message first", "session first"} {
			for _, ender := range []string{"client", "gateway"} {
				name := fmt.Sprintf("gw %s, ep %s, no RR %v, %s, %s ends", r.gw, r.ep, r.noRR, flow, ender)
				t.Run(name, func(t *testing.T) {
					// The proxy on an address of its own, the only one the gateway trusts, as operators set it up: a
					// request in a dialog without Record-Route comes from the client itself.
					r.host = "127.0.0.2"
					h, p := behindKamailioProxy(t, r, func(c *config.Config) {
						relayWait(c)
						c.SIP.Trusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
					})
					alice := testpeer.NewPhone(t, "alice")
					bob := testpeer.NewClient(t, "bob")
					cs := p.chat(alice, bob, flow)
					var rr []sip.Header
					if flow == "message first" {
						rr = cs.ServerDialog().InviteRequest.GetHeaders("Record-Route")
					} else {
						rr = cs.ClientDialog().InviteResponse.GetHeaders("Record-Route")
					}
					if (len(rr) == 0) != r.noRR {
						t.Fatalf("the dialog has %d Record-Route headers; the proxy Record-Routes: %v", len(rr), !r.noRR)
					}
					for _, body := range []string{"hello phone", large} {
						if res := cs.Send("text/plain", body); res.StatusCode != 200 {
							t.Fatalf("SEND answered %+v", res)
						}
						if got := string(alice.Recv().Body()); got != body {
							t.Fatalf("alice got %d octets, want the %d sent", len(got), len(body))
						}
					}
					if res := alice.Send(p.EP, bob.URI, "text/plain", "again"); res.StatusCode != 200 {
						t.Fatalf("MESSAGE answered %d %s, want 200", res.StatusCode, res.Reason)
					}
					if m := cs.Recv(); string(m.Body) != "again" {
						t.Fatalf("bob got %q", m.Body)
					}

					if ender == "client" {
						cs.Bye()
						h.events.waitKind(t, event.SessionEnded)
						return
					}
					key := bob.URI + ":" + alice.URI
					if !h.gw.EndSession(key) {
						t.Fatalf("no session %q to end", key)
					}
					// Over TCP the proxy's connection has a port of its own: only its UDP source says it is the proxy.
					// Without Record-Route the proxy sends a request in a dialog from the side it came on.
					if src := cs.ByeSource(); r.ep == "udp" && src != p.EP && src != p.GW {
						t.Fatalf("the gateway's BYE came from %s, not through the proxy (%s, %s)", src, p.EP, p.GW)
					}
					h.events.waitKind(t, event.SessionEnded)
				})
			}
		}
	}
}

// A gateway listening for SIP over TCP only advertises a Contact with ;transport=tcp: the client's BYE, which
// the proxy sends from the route set to the gateway's Contact, went over UDP (a sip: URI without a transport,
// RFC 3263 §4.1) to a port where nothing listens, and the session never ended.
func TestKamailioProxyTCPOnlyGateway(t *testing.T) {
	for _, flow := range []string{"message first", "session first"} {
		t.Run(flow, func(t *testing.T) {
			h, p := behindKamailioProxy(t, proxyRoute{gw: "tcp", ep: "udp"}, func(c *config.Config) {
				relayWait(c)
				c.SIP.Listen = []config.Listen{{Network: "tcp", Addr: "127.0.0.1:0"}}
			})
			alice := testpeer.NewPhone(t, "alice")
			bob := testpeer.NewClient(t, "bob")
			cs := p.chat(alice, bob, flow)
			cs.Bye()
			h.events.waitKind(t, event.SessionEnded)
		})
	}
}

// A proxy that forks the gateway's INVITE to two contacts of the client's (two devices both answering 200):
// the gateway takes one 2xx for its session and ACKs and BYEs the other branch's dialog along that dialog's
// route set (RFC 3261 §13.2.2.4), so the second device is not left in a dialog nobody ends; the chat goes on
// with the first.
func TestKamailioProxyForkedInvite(t *testing.T) {
	bob2 := testpeer.NewClient(t, "bob")
	r := proxyRoute{gw: "udp", ep: "udp", modules: `loadmodule "corex.so"`,
		initial: `if (is_method("INVITE")) { append_branch("` + bob2.URI + `"); }`}
	_, p := behindKamailioProxy(t, r, relayWait)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	if res := alice.Send(p.EP, bob.URI, "text/plain", "first"); res.StatusCode != 200 {
		t.Fatalf("MESSAGE answered %d %s, want 200", res.StatusCode, res.Reason)
	}
	kept, ended := bob.WaitInvite(), bob2.WaitInvite()
	select {
	case <-kept.ByeReceived():
		kept, ended = ended, kept
	case <-ended.ByeReceived():
	case <-time.After(waitFor):
		t.Fatal("neither branch's dialog got a BYE")
	}
	if kept.GotBye() {
		t.Fatal("both branches' dialogs got a BYE")
	}
	if m := kept.Recv(); string(m.Body) != "first" {
		t.Fatalf("the branch kept got %q", m.Body)
	}
	if res := alice.Send(p.EP, bob.URI, "text/plain", "second"); res.StatusCode != 200 {
		t.Fatalf("MESSAGE answered %d %s, want 200", res.StatusCode, res.Reason)
	}
	if m := kept.Recv(); string(m.Body) != "second" {
		t.Fatalf("the branch kept got %q", m.Body)
	}
}

// A client that rings and never answers: at setup_timeout the gateway CANCELs its INVITE through the proxy,
// which takes the CANCEL to the client (the proxy's own transaction matches it only when it goes where the
// INVITE went, RFC 3261 §9.1), and the MESSAGE gets 408.
func TestKamailioProxyCancel(t *testing.T) {
	h, p := behindKamailioProxy(t, proxyRoute{gw: "udp", ep: "udp"}, relayWait)
	cancelled := make(chan *sip.Request, 1)
	addr := testpeer.NewUA(t, "bob", func(srv *sipgo.Server, _ *sipgo.Client, _ string) {
		srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
			tx.(*sip.ServerTx).OnCancel(func(r *sip.Request) { cancelled <- r })
			tx.Respond(sip.NewResponseFromRequest(req, 180, "Ringing", nil))
			<-tx.Done()
		})
	})
	alice := testpeer.NewPhone(t, "alice")
	if res := alice.Send(p.EP, "sip:bob@"+addr, "text/plain", "anyone?"); res.StatusCode != 408 {
		t.Fatalf("MESSAGE answered %d %s, want 408", res.StatusCode, res.Reason)
	}
	select {
	case <-cancelled:
	case <-time.After(waitFor):
		t.Fatal("the client got no CANCEL")
	}
	if e := h.events.waitKind(t, event.SetupFailed); e.Code != 408 {
		t.Fatalf("setup_failed with %d %s, want 408", e.Code, e.Reason)
	}
}

// A proxy that authenticates the gateway's requests (Digest, 407): the gateway answers the challenge to its
// INVITE and to its MESSAGE with sip.credentials, its ACK carries the INVITE's credentials, and its BYE, which
// the proxy does not challenge in a dialog, ends the session.
func TestKamailioProxyChallenges(t *testing.T) {
	r := proxyRoute{gw: "udp", ep: "udp", modules: `loadmodule "auth.so"`,
		initial: `if ($Rp == {{GW}}) {
		if (!pv_proxy_authenticate("proxy.test", "gw-s3cret", "0")) {
			auth_challenge("proxy.test", "1");
			exit;
		}
		consume_credentials();
	}`}
	h, p := behindKamailioProxy(t, r, func(c *config.Config) {
		relayWait(c)
		c.SIP.Credentials = []config.Credential{{Realm: "proxy.test", Username: "msrpgw", Password: "gw-s3cret"}}
	})
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	if res := alice.Send(p.EP, bob.URI, "text/plain", "hello client"); res.StatusCode != 200 {
		t.Fatalf("MESSAGE answered %d %s, want 200", res.StatusCode, res.Reason)
	}
	cs := bob.WaitInvite()
	cs.Recv()
	if res := cs.Send("text/plain", "hello phone"); res.StatusCode != 200 {
		t.Fatalf("SEND answered %+v", res)
	}
	if got := string(alice.Recv().Body()); got != "hello phone" {
		t.Fatalf("alice got %q", got)
	}
	if !h.gw.EndSession(bob.URI + ":" + alice.URI) {
		t.Fatal("no session to end")
	}
	cs.WaitBye()
}

// On shutdown every session gets its BYE through the proxy before the gateway's transports close.
func TestKamailioProxyShutdownByes(t *testing.T) {
	for _, gwp := range []string{"udp", "tcp"} {
		for _, flow := range []string{"message first", "session first"} {
			t.Run(gwp+" "+flow, func(t *testing.T) {
				h, p := behindKamailioProxy(t, proxyRoute{gw: gwp, ep: "udp"}, relayWait)
				alice := testpeer.NewPhone(t, "alice")
				bob := testpeer.NewClient(t, "bob")
				cs := p.chat(alice, bob, flow)
				ctx, cancel := context.WithTimeout(context.Background(), waitFor)
				defer cancel()
				if err := h.gw.Shutdown(ctx); err != nil {
					t.Fatal(err)
				}
				cs.WaitBye()
			})
		}
	}
}

// An INVITE too large for UDP (RCS headers, here one padding header) goes to the proxy over TCP although the
// outbound proxy says UDP (RFC 3261 §18.1.1); the dialog's ACK and BYE follow the route set the proxy
// Record-Routed it with, the gateway's side of it over TCP.
func TestKamailioProxyLargeInvite(t *testing.T) {
	for _, ender := range []string{"client", "gateway"} {
		t.Run(ender, func(t *testing.T) {
			h, p := behindKamailioProxy(t, proxyRoute{gw: "udp", ep: "udp"}, func(c *config.Config) {
				relayWait(c)
				c.Gateway.Message.InviteHeaders = []string{"X-Pad: " + strings.Repeat("x", 1000)}
			})
			alice := testpeer.NewPhone(t, "alice")
			bob := testpeer.NewClient(t, "bob")
			if res := alice.Send(p.EP, bob.URI, "text/plain", "hello client"); res.StatusCode != 200 {
				t.Fatalf("MESSAGE answered %d %s, want 200", res.StatusCode, res.Reason)
			}
			cs := bob.WaitInvite()
			cs.Recv()
			if ender == "client" {
				cs.Bye()
				h.events.waitKind(t, event.SessionEnded)
				return
			}
			h.gw.EndSession(bob.URI + ":" + alice.URI)
			cs.WaitBye()
		})
	}
}

// A late-offer INVITE through the proxy, the proxy reaching the gateway over TCP: the gateway's offer in its
// 200, the client's answer in the ACK, which comes along the route set (SPEC §3.2 step 2).
func TestKamailioProxyLateOffer(t *testing.T) {
	h, p := behindKamailioProxy(t, proxyRoute{gw: "tcp", ep: "udp"}, relayWait)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	req, err := testpeer.NewRequest(sip.INVITE, bob.URI, alice.URI, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetDestination(p.EP)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	dlg, err := bob.DialogUA().WriteInvite(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := dlg.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		t.Fatal(err)
	}
	offer, err := sdp.Parse(dlg.InviteResponse.Body())
	if err != nil {
		t.Fatal(err)
	}
	cs := bob.NewSession()
	path, err := msrp.ParsePath(strings.Join(offer.Path, " "))
	if err != nil {
		t.Fatal(err)
	}
	cs.MSRP.SetPeerPath(path)
	ackWith(t, dlg, bob.Media(cs, sdp.SetupPassive))
	select {
	case <-cs.MSRP.Bound():
	case <-time.After(waitFor):
		t.Fatal("the gateway never connected after the ACK's answer")
	}
	if r := cs.Send("text/plain", "late offer"); r.StatusCode != 200 {
		t.Fatalf("SEND: %+v", r)
	}
	if got := string(alice.Recv().Body()); got != "late offer" {
		t.Fatalf("alice got %q", got)
	}
	if err := dlg.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	h.events.waitKind(t, event.SessionEnded)
}

// A client that is busy: its 486 comes back through the proxy (which takes the ACK of that non-2xx itself),
// the MESSAGE gets 486, and the setup-failed notification reaches the phone through the proxy too.
func TestKamailioProxyBusy(t *testing.T) {
	_, p := behindKamailioProxy(t, proxyRoute{gw: "udp", ep: "udp"}, relayWait)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	bob.SetAnswer(486, "")
	if res := alice.Send(p.EP, bob.URI, "text/plain", "anyone?"); res.StatusCode != 486 {
		t.Fatalf("MESSAGE answered %d %s, want 486", res.StatusCode, res.Reason)
	}
	n := alice.Recv()
	if got, want := string(n.Body()), "Failed to establish session, error: 486 Busy Here"; got != want {
		t.Fatalf("alice got %q, want %q", got, want)
	}
	if src := n.Source(); src != p.EP {
		t.Fatalf("the notification came from %s, not through the proxy (%s)", src, p.EP)
	}
}

// A restart of the proxy in the middle of a chat (its TCP connections closed, its transactions forgotten;
// Record-Route keeps no state): the gateway's next MESSAGE goes on a new connection, the phone's reaches the
// session, and the gateway's BYE follows the route set to the new proxy.
func TestKamailioProxyRestart(t *testing.T) {
	for _, c := range []struct{ gw, flow string }{
		{"tcp", "message first"}, {"tcp", "session first"}, {"udp", "message first"}, {"udp", "session first"},
	} {
		t.Run(c.gw+" "+c.flow, func(t *testing.T) {
			flow := c.flow
			h, p := behindKamailioProxy(t, proxyRoute{gw: c.gw, ep: "udp"}, relayWait)
			alice := testpeer.NewPhone(t, "alice")
			bob := testpeer.NewClient(t, "bob")
			cs := p.chat(alice, bob, flow)
			if res := cs.Send("text/plain", "one"); res.StatusCode != 200 {
				t.Fatalf("SEND answered %+v", res)
			}
			alice.Recv()
			// The restart comes once the gateway has alice's 200: a response the old proxy never relayed would
			// hold the MESSAGEs after it (one outstanding per destination) until Timer F.
			for h.events.countWhere(func(e event.Event) bool {
				return e.Kind == event.MessageDelivered && e.Direction == event.ToSIP
			}) == 0 {
				time.Sleep(10 * time.Millisecond)
			}
			p.restart()
			if res := cs.Send("text/plain", "two"); res.StatusCode != 200 {
				t.Fatalf("SEND answered %+v", res)
			}
			if m, ok := alice.TryRecv(5 * time.Second); !ok || string(m.Body()) != "two" {
				t.Fatalf("alice got no MESSAGE after the proxy's restart")
			}
			if res := alice.Send(p.EP, bob.URI, "text/plain", "three"); res.StatusCode != 200 {
				t.Fatalf("MESSAGE answered %d %s, want 200", res.StatusCode, res.Reason)
			}
			h.gw.EndSession(bob.URI + ":" + alice.URI)
			cs.WaitBye()
		})
	}
}

// A newer INVITE for a key takes the session over (SPEC §3.2 step 3): the older dialog, set up by the client
// or by the gateway, gets its BYE through the proxy along its own route set, and the chat goes on in the new one.
func TestKamailioProxyNewerInviteWins(t *testing.T) {
	for _, flow := range []string{"message first", "session first"} {
		t.Run(flow, func(t *testing.T) {
			_, p := behindKamailioProxy(t, proxyRoute{gw: "tcp", ep: "udp", host: "127.0.0.2"}, relayWait)
			alice := testpeer.NewPhone(t, "alice")
			bob := testpeer.NewClient(t, "bob")
			old := p.chat(alice, bob, flow)
			cs := bob.Call(p.EP, alice.URI, sdp.SetupActive)
			if src := old.ByeSource(); src != p.EP {
				t.Fatalf("the older dialog's BYE came from %s, not through the proxy (%s)", src, p.EP)
			}
			if res := alice.Send(p.EP, bob.URI, "text/plain", "to the new one"); res.StatusCode != 200 {
				t.Fatalf("MESSAGE answered %d %s, want 200", res.StatusCode, res.Reason)
			}
			if m := cs.Recv(); string(m.Body) != "to the new one" {
				t.Fatalf("bob got %q", m.Body)
			}
		})
	}
}

// A restart of the proxy while a MESSAGE the gateway generated waits for its final response over TCP: the
// connection's close ends that MESSAGE at once as a 503 (its SEND's failure REPORT says so), and the next
// MESSAGE reaches the phone at once through the restarted proxy, not after Timer F (32 s) with the MESSAGEs
// to the destination held behind the lost one (TestGeneratedMessageConnClosed, without a proxy).
func TestKamailioProxyRestartOutstanding(t *testing.T) {
	h, p := behindKamailioProxy(t, proxyRoute{gw: "tcp", ep: "udp"}, relayWait)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	cs := p.chat(alice, bob, "session first")
	alice.SetAnswer(0) // the first MESSAGE stays unanswered
	one := cs.Send("text/plain", "one")
	if one.StatusCode != 200 {
		t.Fatalf("SEND answered %+v", one)
	}
	if m := alice.Recv(); string(m.Body()) != "one" {
		t.Fatalf("alice got %q", m.Body())
	}
	alice.SetAnswer(200)
	p.restart()
	restarted := time.Now()
	if res := cs.Send("text/plain", "two"); res.StatusCode != 200 {
		t.Fatalf("SEND answered %+v", res)
	}
	const prompt = 5 * time.Second
	if rep, ok := tryRecvReport(cs, prompt); !ok {
		t.Fatalf("no REPORT for the MESSAGE lost with the proxy within %s", prompt)
	} else if rep.MessageID != one.MessageID || rep.StatusCode != 408 || rep.Comment != "503 Service Unavailable" {
		t.Fatalf("REPORT %s %d %q, want %s 408 \"503 Service Unavailable\"", rep.MessageID, rep.StatusCode, rep.Comment, one.MessageID)
	}
	for {
		m, ok := alice.TryRecv(prompt - time.Since(restarted))
		if !ok {
			t.Fatalf("alice got no MESSAGE within %s of the proxy's restart", prompt)
		}
		if string(m.Body()) == "two" {
			break
		}
	}
	t.Logf("the next MESSAGE reached alice %s after the proxy's restart", time.Since(restarted).Round(time.Millisecond))
	if e := h.events.waitKind(t, event.MessageDelivered); e.Direction != event.ToSIP {
		t.Fatalf("delivered %+v, want the MESSAGE to alice", e) // alice's 200 came back through the new proxy
	}
}
