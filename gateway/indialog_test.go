package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/internal/testpeer"
)

// The gateway's requests inside its dialogs (the ACK to its INVITE's 2xx, the BYE that ends a session) are
// tested here with bare UDP peers: a peer whose Contact is not where its messages come from, a proxy that
// does not Record-Route. The setups never come up (the peer says a=setup:active and never connects), so
// setup_timeout ends them with BYE.

// activeOffer is an SDP offer or answer saying the peer connects (a=setup:active), which it never does.
const activeOffer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
	"m=message 9 TCP/MSRP *\r\na=accept-types:text/plain\r\na=path:msrp://127.0.0.1:9/never;tcp\r\na=setup:active\r\n"

func shortSetup(c *config.Config) { c.Gateway.SetupTimeout = 300 * time.Millisecond }

// viaProxy is shortSetup with the outbound proxy proxy, and no setup-failed notification: it would go to the
// proxy too, in no set order with the BYE.
func viaProxy(proxy *rawUDP) func(*config.Config) {
	return func(c *config.Config) {
		shortSetup(c)
		c.SIP.OutboundProxy = "sip:" + proxy.addr()
		c.Gateway.SetupFailed.Notify = false
	}
}

// inviteFrom INVITEs the gateway's UDP listener from u with the Contact contact and activeOffer, ACKs the
// 200 and returns it.
func inviteFrom(u *rawUDP, h *harness, contact string) *sip.Response {
	u.t.Helper()
	ruri := "sip:alice@" + h.udp()
	head := fmt.Sprintf("From: <sip:bob@127.0.0.1>;tag=b1\nCall-ID: indialog-%s\n", u.addr())
	res := u.exchange(h.udp(), fmt.Sprintf("INVITE %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-inv;rport\n"+
		"Max-Forwards: 70\n%sTo: <%s>\nCSeq: 5 INVITE\nContact: <%s>\nContent-Type: application/sdp\n"+
		"Content-Length: %d\n\n%s", ruri, u.addr(), head, ruri, contact, len(activeOffer), activeOffer))
	if res.StatusCode != 200 {
		u.t.Fatalf("INVITE answered %d %s", res.StatusCode, res.Reason)
	}
	u.write(h.udp(), fmt.Sprintf("ACK %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-ack\nMax-Forwards: 70\n%s%s\n"+
		"CSeq: 5 ACK\nContent-Length: 0\n\n", res.Contact().Address.String(), u.addr(), head, res.To().String()))
	return res
}

// rawReinvite sends from phone a re-INVITE without SDP (CSeq 6) in the dialog inviteFrom set up, first being the
// gateway's 200 to it, and returns the start line and headers the dialog's next requests (the ACK) share.
func rawReinvite(phone *rawUDP, h *harness, first *sip.Response) (head string) {
	head = fmt.Sprintf("%s SIP/2.0\nMax-Forwards: 70\nFrom: <sip:bob@127.0.0.1>;tag=b1\nCall-ID: indialog-%s\n%s\n",
		first.Contact().Address.String(), phone.addr(), first.To().String())
	phone.write(h.udp(), "INVITE "+head+"Via: SIP/2.0/UDP "+phone.addr()+";branch=z9hG4bK-reinv;rport\n"+
		"CSeq: 6 INVITE\nContact: <sip:bob@"+phone.addr()+">\nContent-Length: 0\n\n")
	return head
}

// answerInvite answers the gateway's INVITE req, read by u from from, 200 with the Contact contact,
// activeOffer, and the Record-Route headers rr.
func answerInvite(u *rawUDP, req *sip.Request, from net.Addr, contact string, rr ...string) {
	u.t.Helper()
	answerInviteWith(u, req, from, contact, activeOffer, rr...)
}

// answerInviteWith is answerInvite with the SDP answer answer.
func answerInviteWith(u *rawUDP, req *sip.Request, from net.Addr, contact, answer string, rr ...string) {
	u.t.Helper()
	res := sip.NewResponseFromRequest(req, 200, "OK", []byte(answer))
	res.To().Params.Add("tag", "peer")
	for _, r := range rr {
		res.AppendHeader(sip.NewHeader("Record-Route", r))
	}
	res.AppendHeader(sip.NewHeader("Contact", "<"+contact+">"))
	res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	if _, err := u.pc.WriteTo([]byte(res.String()), from); err != nil {
		u.t.Fatal(err)
	}
}

// expectRequest reads u's next request and fails unless it is method, for ruri, from the gateway's listener.
func expectRequest(t *testing.T, u *rawUDP, h *harness, method sip.RequestMethod, ruri string) *sip.Request {
	t.Helper()
	req, from := u.request()
	if req.Method != method || req.Recipient.String() != ruri {
		t.Fatalf("got %s at %s, want %s %s", req.StartLine(), u.addr(), method, ruri)
	}
	if from.String() != h.udp() {
		t.Fatalf("%s came from %s, want the gateway's listener %s", method, from, h.udp())
	}
	return req
}

// A BYE over UDP leaves from the SIP listener also when it goes where nothing came from before: to a remote
// target (the peer's Contact) that is not the address the INVITE, or the 200, came from. A socket sipgo opened
// for it would have an ephemeral port its Via names and the peer's answer goes to.
func TestByeToContactLeavesFromListener(t *testing.T) {
	t.Run("session first", func(t *testing.T) {
		h := newHarness(t, shortSetup)
		phone, contact := newRawUDP(t), newRawUDP(t)
		inviteFrom(phone, h, "sip:bob@"+contact.addr())
		expectRequest(t, contact, h, sip.BYE, "sip:bob@"+contact.addr())
	})
	t.Run("MESSAGE first", func(t *testing.T) {
		h := newHarness(t, shortSetup)
		alice := testpeer.NewPhone(t, "alice")
		bob, contact := newRawUDP(t), newRawUDP(t)
		alice.Send(h.udp(), "sip:bob@"+bob.addr(), "text/plain", "hello")
		inv, from := bob.request()
		answerInvite(bob, inv, from, "sip:bob@"+contact.addr())
		expectRequest(t, contact, h, sip.ACK, "sip:bob@"+contact.addr())
		expectRequest(t, contact, h, sip.BYE, "sip:bob@"+contact.addr())
	})
}

// sip.outbound_proxy gets the gateway's BYEs (SPEC §1) and the ACKs to its INVITEs' 2xx, as it gets its
// INVITEs and MESSAGEs, when the dialog has no route set: the proxy did not Record-Route, or the INVITE came
// without one. A route set decides where they go when there is one.
func TestDialogRequestsThroughOutboundProxy(t *testing.T) {
	t.Run("session first", func(t *testing.T) {
		proxy := newRawUDP(t)
		h := newHarness(t, viaProxy(proxy))
		phone := newRawUDP(t)
		inviteFrom(phone, h, "sip:bob@"+phone.addr())
		bye := expectRequest(t, proxy, h, sip.BYE, "sip:bob@"+phone.addr())
		if r := bye.Route(); r == nil || r.Address.Host+":"+fmt.Sprint(r.Address.Port) != proxy.addr() || !r.Address.UriParams.Has("lr") {
			t.Fatalf("BYE Route %v, want the outbound proxy's URI with lr", r)
		}
	})
	t.Run("MESSAGE first", func(t *testing.T) {
		proxy := newRawUDP(t)
		h := newHarness(t, viaProxy(proxy))
		alice := testpeer.NewPhone(t, "alice")
		bob := newRawUDP(t)
		alice.Send(h.udp(), "sip:bob@"+bob.addr(), "text/plain", "hello")
		inv, from := proxy.request()
		answerInvite(proxy, inv, from, "sip:bob@"+bob.addr()) // as bob's answer forwarded by the proxy
		expectRequest(t, proxy, h, sip.ACK, "sip:bob@"+bob.addr())
		expectRequest(t, proxy, h, sip.BYE, "sip:bob@"+bob.addr())
	})
	t.Run("route set", func(t *testing.T) {
		proxy, recordRoute := newRawUDP(t), newRawUDP(t)
		h := newHarness(t, viaProxy(proxy))
		alice := testpeer.NewPhone(t, "alice")
		bob := newRawUDP(t)
		alice.Send(h.udp(), "sip:bob@"+bob.addr(), "text/plain", "hello")
		inv, from := proxy.request()
		answerInvite(proxy, inv, from, "sip:bob@"+bob.addr(), "<sip:"+recordRoute.addr()+";lr>")
		for _, m := range []sip.RequestMethod{sip.ACK, sip.BYE} {
			req := expectRequest(t, recordRoute, h, m, "sip:bob@"+bob.addr())
			if routes := req.GetHeaders("Route"); len(routes) != 1 {
				t.Fatalf("%s Route %v, want only the route set's", m, routes)
			}
		}
	})
}

// The 2xx to a re-INVITE over UDP is passed to the transport again until its ACK comes (RFC 3261 §13.3.1.4),
// as the 2xx to the INVITE that made the dialog is: the peer whose first 200 was lost gets another, and none
// comes after the ACK.
func TestReinviteAnswerRetransmittedUntilAck(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Gateway.SetupTimeout = 10 * time.Second })
	phone := newRawUDP(t)
	first := inviteFrom(phone, h, "sip:bob@"+phone.addr())
	head := rawReinvite(phone, h, first)
	for i := range 2 { // the first as if lost, then its retransmission T1 later
		if res := phone.final(); res.StatusCode != 200 || res.CSeq().SeqNo != 6 {
			t.Fatalf("answer %d to the re-INVITE: %d %s, CSeq %v", i, res.StatusCode, res.Reason, res.CSeq())
		}
	}
	phone.write(h.udp(), "ACK "+head+"Via: SIP/2.0/UDP "+phone.addr()+";branch=z9hG4bK-reack\nCSeq: 6 ACK\nContent-Length: 0\n\n")
	phone.pc.SetReadDeadline(time.Now().Add(3 * sip.T1)) // the next retransmission was due 2·T1 after the last
	if n, _, err := phone.pc.ReadFrom(make([]byte, 65535)); err == nil {
		t.Fatalf("a datagram after the ACK (%d bytes): the 2xx was retransmitted still", n)
	}
}

// The CANCEL of an INVITE goes where the INVITE went, with the INVITE's Route headers (RFC 3261 §9.1), also
// when the provisional response it follows carries Record-Route: that is the route set of an early dialog,
// which a CANCEL is no request in. Sent along it, the CANCEL reached a proxy that never saw the INVITE's
// transaction, and the INVITE stayed uncancelled.
func TestCancelGoesWhereInviteWent(t *testing.T) {
	for _, viaOutbound := range []bool{false, true} {
		t.Run(fmt.Sprintf("outbound proxy %v", viaOutbound), func(t *testing.T) {
			first, recordRoute := newRawUDP(t), newRawUDP(t) // first: where the INVITE goes
			h := newHarness(t, func(c *config.Config) {
				shortSetup(c)
				c.Gateway.SetupFailed.Notify = false
				if viaOutbound {
					c.SIP.OutboundProxy = "sip:" + first.addr()
				}
			})
			alice := testpeer.NewPhone(t, "alice")
			bob := newRawUDP(t)
			alice.Send(h.udp(), "sip:bob@"+bob.addr(), "text/plain", "hello")
			if !viaOutbound {
				first = bob
			}
			inv, from := first.request()
			ringing := sip.NewResponseFromRequest(inv, 180, "Ringing", nil)
			ringing.To().Params.Add("tag", "peer")
			ringing.AppendHeader(sip.NewHeader("Record-Route", "<sip:"+recordRoute.addr()+";lr>"))
			ringing.AppendHeader(sip.NewHeader("Contact", "<sip:bob@"+bob.addr()+">"))
			if _, err := first.pc.WriteTo([]byte(ringing.String()), from); err != nil {
				t.Fatal(err)
			}
			cancel := expectRequest(t, first, h, sip.CANCEL, inv.Recipient.String())
			if got, want := fmt.Sprint(cancel.GetHeaders("Route")), fmt.Sprint(inv.GetHeaders("Route")); got != want {
				t.Errorf("CANCEL Route %s, want the INVITE's %s", got, want)
			}
			if cancel.Via().Value() != inv.Via().Value() || cancel.CSeq().SeqNo != inv.CSeq().SeqNo {
				t.Errorf("CANCEL Via %s CSeq %v, want the INVITE's %s %v", cancel.Via().Value(), cancel.CSeq(), inv.Via().Value(), inv.CSeq())
			}
		})
	}
}

// An ACK or BYE through the outbound proxy goes over the proxy's transport, as the INVITEs and MESSAGEs sent
// there do, not over the transport of the dialog's INVITE: a session-first INVITE over TCP ends with a BYE
// that reaches a proxy listening on UDP only.
func TestDialogRequestsTakeTheProxysTransport(t *testing.T) {
	proxy := newRawUDP(t)
	h := newHarness(t, viaProxy(proxy))
	phone := newRawUDP(t) // its Contact; the INVITE comes over TCP
	conn, err := net.Dial("tcp", h.gw.SIPAddr("tcp"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ruri := "sip:alice@" + h.gw.SIPAddr("tcp")
	head := "From: <sip:bob@127.0.0.1>;tag=b1\nCall-ID: indialog-tcp\n"
	invite := fmt.Sprintf("INVITE %s SIP/2.0\nVia: SIP/2.0/TCP %s;branch=z9hG4bK-tcpinv\nMax-Forwards: 70\n%s"+
		"To: <%s>\nCSeq: 5 INVITE\nContact: <sip:bob@%s>\nContent-Type: application/sdp\nContent-Length: %d\n\n",
		ruri, conn.LocalAddr(), head, ruri, phone.addr(), len(activeOffer))
	if _, err := conn.Write([]byte(strings.ReplaceAll(invite, "\n", "\r\n") + activeOffer)); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(waitFor))
	r := bufio.NewReader(conn)
	var to string
	for line := ""; line != "\r\n"; {
		if line, err = r.ReadString('\n'); err != nil {
			t.Fatalf("reading the answer to the INVITE: %v", err)
		}
		if strings.HasPrefix(line, "To:") {
			to = strings.TrimSpace(line)
		}
	}
	ack := fmt.Sprintf("ACK %s SIP/2.0\nVia: SIP/2.0/TCP %s;branch=z9hG4bK-tcpack\nMax-Forwards: 70\n%s%s\n"+
		"CSeq: 5 ACK\nContent-Length: 0\n\n", ruri, conn.LocalAddr(), head, to)
	if _, err := conn.Write([]byte(strings.ReplaceAll(ack, "\n", "\r\n"))); err != nil {
		t.Fatal(err)
	}
	bye := expectRequest(t, proxy, h, sip.BYE, "sip:bob@"+phone.addr())
	if v := bye.Via(); v.Transport != "UDP" {
		t.Fatalf("BYE Via %s, want UDP, the proxy's transport", v.Value())
	}
}

// A re-INVITE whose 2xx never gets its ACK ends the session with BYE once the transaction ends (Timer L,
// 64·T1; RFC 3261 §13.3.1.4), as an INVITE's would. Timers are shortened (Timer L 640 ms) and setup_timeout is
// long, so the BYE is the re-INVITE's doing, not a setup that failed.
func TestReinviteNotAckedEndsSession(t *testing.T) {
	if !shortSIPTimers(t) {
		return
	}
	h := newHarness(t, func(c *config.Config) { c.Gateway.SetupTimeout = 30 * time.Second })
	phone := newRawUDP(t)
	rawReinvite(phone, h, inviteFrom(phone, h, "sip:bob@"+phone.addr()))
	start := time.Now()
	answers := 0
	for {
		m := phone.mustRead()
		if _, ok := m.(*sip.Response); ok {
			answers++ // the 2xx, retransmitted: never ACKed
			continue
		}
		if req := m.(*sip.Request); req.Method != sip.BYE {
			t.Fatalf("got %s, want BYE", req.StartLine())
		}
		break
	}
	if answers < 2 {
		t.Fatalf("BYE after %d answers to the re-INVITE, want it retransmitted first", answers)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("BYE after %s", took)
	}
	if e := h.events.waitKind(t, event.SessionEnded); e.Reason != "reinvite_not_acked" {
		t.Fatalf("session ended %q, want reinvite_not_acked", e.Reason)
	}
}

// rawUDPWithTCP is a raw UDP peer that also listens for SIP over TCP on the same port, and the requests read
// there, in order. A port the kernel gives a UDP socket may be taken over TCP (by any connection on the
// machine: the ephemeral ranges are the same), so ports are tried until one is free both ways.
func rawUDPWithTCP(t *testing.T) (*rawUDP, <-chan *sip.Request) {
	t.Helper()
	for i := 0; ; i++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			if i == 100 {
				t.Fatalf("no port free over both UDP and TCP: %v", err)
			}
			continue
		}
		t.Cleanup(func() { pc.Close() })
		return &rawUDP{t: t, pc: pc}, tcpRequests(t, ln)
	}
}

// tcpRequests serves SIP over TCP on ln and returns the requests read there, in order.
func tcpRequests(t *testing.T, ln net.Listener) <-chan *sip.Request {
	t.Helper()
	t.Cleanup(func() { ln.Close() })
	out := make(chan *sip.Request, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			go func() {
				r := bufio.NewReader(c)
				for {
					var head strings.Builder
					length := 0
					for {
						line, err := r.ReadString('\n')
						if err != nil {
							return
						}
						head.WriteString(line)
						if line == "\r\n" {
							break
						}
						if name, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(name), "Content-Length") {
							fmt.Sscan(strings.TrimSpace(v), &length)
						}
					}
					body := make([]byte, length)
					if _, err := io.ReadFull(r, body); err != nil {
						return
					}
					msg, err := newSIPParser().ParseSIP(append([]byte(head.String()), body...))
					if err != nil {
						continue
					}
					if req, ok := msg.(*sip.Request); ok {
						if req.Method == sip.BYE {
							c.Write([]byte(sip.NewResponseFromRequest(req, 200, "OK", nil).String()))
						}
						out <- req
					}
				}
			}()
		}
	}()
	return out
}

// nextOver returns the next request from reqs, failing the test after waitFor.
func nextOver(t *testing.T, reqs <-chan *sip.Request, what string) *sip.Request {
	t.Helper()
	select {
	case req := <-reqs:
		return req
	case <-time.After(waitFor):
		t.Fatalf("no %s over TCP", what)
		return nil
	}
}

// A dialog without a route set sends its requests to the remote target over the transport the target's URI
// names (RFC 3261 §12.2.1.1, §8.1.2; RFC 3263 §4.1): a Contact with ;transport=tcp gets the ACK and BYE over
// TCP, also when the INVITE, or its 2xx, came over UDP. Over UDP they reached nothing that listens there.
func TestDialogRequestsTakeTheTargetsTransport(t *testing.T) {
	t.Run("session first", func(t *testing.T) {
		h := newHarness(t, shortSetup)
		phone, reqs := rawUDPWithTCP(t) // the same port, over TCP
		contact := "sip:bob@" + phone.addr() + ";transport=tcp"
		inviteFrom(phone, h, contact)
		if bye := nextOver(t, reqs, "BYE"); bye.Method != sip.BYE || bye.Recipient.String() != contact || bye.Via().Transport != "TCP" {
			t.Fatalf("got %s, Via %s, want a BYE to %s over TCP", bye.StartLine(), bye.Via().Value(), contact)
		}
	})
	t.Run("MESSAGE first", func(t *testing.T) {
		h := newHarness(t, shortSetup)
		alice := testpeer.NewPhone(t, "alice")
		bob, reqs := rawUDPWithTCP(t)
		contact := "sip:bob@" + bob.addr() + ";transport=tcp"
		alice.Send(h.udp(), "sip:bob@"+bob.addr(), "text/plain", "hello")
		inv, from := bob.request()
		answerInvite(bob, inv, from, contact)
		for _, m := range []sip.RequestMethod{sip.ACK, sip.BYE} {
			if req := nextOver(t, reqs, string(m)); req.Method != m || req.Recipient.String() != contact || req.Via().Transport != "TCP" {
				t.Fatalf("got %s, Via %s, want %s to %s over TCP", req.StartLine(), req.Via().Value(), m, contact)
			}
		}
	})
}

// A session that is up keeps only what its dialog's BYE needs (confirmedDialog): the BYE that ends a session
// the peer's INVITE set up goes along the INVITE's Record-Route, in its order (RFC 3261 §12.1.1), to the
// INVITE's Contact, with the dialog's tags and Call-ID and the next CSeq number.
func TestUpSessionByeFollowsRouteSet(t *testing.T) {
	h := newHarness(t, nil)
	phone, proxy := newRawUDP(t), newRawUDP(t)
	rr1, rr2 := "<sip:"+proxy.addr()+";lr>", "<sip:127.0.0.1:9;lr;second>" // the second is never dialled
	res := upSessionByInvite(t, h, phone, "rr-bob", "up-bye", rr1, rr2)
	ourTag, _ := res.To().Params.Get("tag")
	endUpSession(t, h, proxy, upBye{ruri: "sip:rr-bob@" + phone.addr(), routes: []string{rr1, rr2}, fromTag: ourTag,
		toTag: "b1", callID: "up-bye-" + phone.addr(), cseq: 6})
}

// upSessionByInvite sets up a session with phone's INVITE from user, with the Record-Route headers rr in
// order, the gateway connecting to the MSRP session of a client of that name, and ACKs the 200 (Call-ID
// callID-<phone's address>): the session comes up. It returns the 200.
func upSessionByInvite(t *testing.T, h *harness, phone *rawUDP, user, callID string, rr ...string) *sip.Response {
	t.Helper()
	bob := testpeer.NewClient(t, user)
	cs := bob.NewSession()
	offer := string(bob.Media(cs, "passive").Marshal(1, 1)) // the gateway connects: the session comes up
	ruri := "sip:alice@" + h.udp()
	head := fmt.Sprintf("From: <sip:%s@127.0.0.1>;tag=b1\nCall-ID: %s-%s\n", user, callID, phone.addr())
	var routes strings.Builder
	for _, r := range rr {
		routes.WriteString("Record-Route: " + r + "\n")
	}
	res := phone.exchange(h.udp(), fmt.Sprintf("INVITE %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-%s;rport\n"+
		"Max-Forwards: 70\n%s%sTo: <%s>\nCSeq: 5 INVITE\nContact: <sip:%s@%s>\n"+
		"Content-Type: application/sdp\nContent-Length: %d\n\n%s", ruri, phone.addr(), callID, routes.String(), head, ruri,
		user, phone.addr(), len(offer), strings.ReplaceAll(offer, "\r\n", "\n"))) // write makes each \n a CRLF
	if res.StatusCode != 200 {
		t.Fatalf("INVITE answered %d %s", res.StatusCode, res.Reason)
	}
	cs.MSRP.SetPeerPath(sdpPath(t, res.Body()))
	phone.write(h.udp(), fmt.Sprintf("ACK %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-%s-ack\nMax-Forwards: 70\n%s%s\n"+
		"CSeq: 5 ACK\nContent-Length: 0\n\n", res.Contact().Address.String(), phone.addr(), callID, head, res.To().String()))
	return res
}

// The same for a session the gateway's INVITE set up: the route set is its 2xx's Record-Route in reverse
// (RFC 3261 §12.1.2), the From the INVITE's, the To the 2xx's.
func TestUpSessionByeFollowsRouteSetMessageFirst(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "rr-bob")
	cs := bob.NewSession()
	peer, proxy := newRawUDP(t), newRawUDP(t)
	go alice.Send(h.udp(), "sip:rr-bob@"+peer.addr(), "text/plain", "hello")
	inv, from := peer.request()
	cs.MSRP.SetPeerPath(sdpPath(t, inv.Body()))
	far, near := "<sip:127.0.0.1:9;lr;far>", "<sip:"+proxy.addr()+";lr>" // the far one is never dialled
	answerInviteWith(peer, inv, from, "sip:rr-bob@"+peer.addr(), string(bob.Media(cs, "passive").Marshal(1, 1)), far, near)
	expectRequest(t, proxy, h, sip.ACK, "sip:rr-bob@"+peer.addr())
	if m := cs.Recv(); string(m.Body) != "hello" {
		t.Fatalf("SEND %q, want hello", m.Body)
	}
	ourTag, _ := inv.From().Params.Get("tag")
	endUpSession(t, h, proxy, upBye{ruri: "sip:rr-bob@" + peer.addr(), routes: []string{near, far}, fromTag: ourTag,
		toTag: "peer", callID: inv.CallID().Value(), cseq: inv.CSeq().SeqNo + 1})
}

// upBye is the BYE that ends an up session: to ruri, along routes, with these tags, Call-ID and CSeq number.
type upBye struct {
	ruri           string
	routes         []string
	fromTag, toTag string
	callID         string
	cseq           uint32
}

// endUpSession has the operator end h's session once it is up, and checks that its BYE, read by proxy (the
// first hop of the route set), is want; the BYE is answered 200 and the session ends.
func endUpSession(t *testing.T, h *harness, proxy *rawUDP, want upBye) {
	t.Helper()
	started := h.events.waitKind(t, event.SessionStarted)
	go h.gw.EndSession(started.Key)
	bye := expectRequest(t, proxy, h, sip.BYE, want.ruri)
	var routes []string
	for _, r := range bye.GetHeaders("Route") {
		routes = append(routes, r.Value())
	}
	if !slices.Equal(routes, want.routes) {
		t.Errorf("BYE Route %q, want %q", routes, want.routes)
	}
	if tag, _ := bye.From().Params.Get("tag"); tag != want.fromTag {
		t.Errorf("BYE From %s, want the tag %s", bye.From().Value(), want.fromTag)
	}
	if tag, _ := bye.To().Params.Get("tag"); tag != want.toTag {
		t.Errorf("BYE To %s, want the tag %s", bye.To().Value(), want.toTag)
	}
	if bye.CallID().Value() != want.callID {
		t.Errorf("BYE Call-ID %s, want %s", bye.CallID().Value(), want.callID)
	}
	if c := bye.CSeq(); c.MethodName != sip.BYE || c.SeqNo != want.cseq {
		t.Errorf("BYE CSeq %s, want %d BYE", c.Value(), want.cseq)
	}
	gw, err := net.ResolveUDPAddr("udp", h.udp())
	if err != nil {
		t.Fatal(err)
	}
	proxy.answer(bye, gw, 200, "OK")
	if e := h.events.waitKind(t, event.SessionEnded); e.Key != started.Key {
		t.Fatalf("ended %q, want %q", e.Key, started.Key)
	}
}

// The BYE ending an up session, challenged 407 (a proxy that challenges every request), goes again with
// Proxy-Authorization from sip.credentials and the next CSeq (SPEC §8, "once per challenge"); answered 200,
// the session ends. Unanswered, the peer's side of the dialog stayed up.
func TestUpSessionByeAnswersChallenge(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.SIP.Credentials = testCredentials })
	phone := newRawUDP(t)
	upSessionByInvite(t, h, phone, "auth-bob", "bye-auth")
	started := h.events.waitKind(t, event.SessionStarted)
	go h.gw.EndSession(started.Key)

	bye := expectRequest(t, phone, h, sip.BYE, "sip:auth-bob@"+phone.addr())
	gw, err := net.ResolveUDPAddr("udp", h.udp())
	if err != nil {
		t.Fatal(err)
	}
	challenge := sip.NewResponseFromRequest(bye, 407, "Proxy Authentication Required", nil)
	challenge.AppendHeader(sip.NewHeader("Proxy-Authenticate", `Digest realm="gw-test", nonce="abc123", algorithm=MD5, qop="auth"`))
	phone.send(gw, challenge)

	again := expectRequest(t, phone, h, sip.BYE, "sip:auth-bob@"+phone.addr())
	auth := again.GetHeader("Proxy-Authorization")
	if auth == nil || !strings.Contains(auth.Value(), `username="gwuser"`) {
		t.Fatalf("BYE after the 407 carries Proxy-Authorization %v, want gw-test's credentials", auth)
	}
	if again.CSeq().SeqNo != bye.CSeq().SeqNo+1 {
		t.Fatalf("BYE after the 407 has CSeq %d, want %d", again.CSeq().SeqNo, bye.CSeq().SeqNo+1)
	}
	phone.answer(again, gw, 200, "OK")
	if e := h.events.waitKind(t, event.SessionEnded); e.Key != started.Key {
		t.Fatalf("ended %q, want %q", e.Key, started.Key)
	}
}

// A route set whose first URI has no lr names a strict router (RFC 2543): the BYE that ends the session is
// sent with that URI as its Request-URI, the rest of the route set and then the remote target (the peer's
// Contact) as its Route headers (RFC 3261 §12.2.1.1), and goes to the Request-URI (§8.1.2).
func TestUpSessionByeThroughStrictRouter(t *testing.T) {
	h := newHarness(t, nil)
	phone, proxy := newRawUDP(t), newRawUDP(t)
	upSessionByInvite(t, h, phone, "sr-bob", "strict", "<sip:"+proxy.addr()+">") // no lr: a strict router
	started := h.events.waitKind(t, event.SessionStarted)
	go h.gw.EndSession(started.Key)

	bye, _ := proxy.request()
	var routes []string
	for _, r := range bye.GetHeaders("Route") {
		routes = append(routes, r.Value())
	}
	wantRURI, wantRoutes := "sip:"+proxy.addr(), []string{"<sip:sr-bob@" + phone.addr() + ">"}
	if bye.Method != sip.BYE || bye.Recipient.String() != wantRURI || !slices.Equal(routes, wantRoutes) {
		t.Fatalf("BYE through a strict router: got %s with Route %q, want Request-URI %s with Route %q",
			bye.StartLine(), routes, wantRURI, wantRoutes)
	}
}
