package gateway

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/cpim"
	"github.com/msrpgw/msrpgw/internal/testpeer"
	"github.com/msrpgw/msrpgw/msrp"
	"github.com/msrpgw/msrpgw/msrp/sdp"
)

func waitReply(c *config.Config) { c.Gateway.Message.Reply = "wait" }

// A sendonly chat offer (RCS Large Message Mode sends one message so) is answered recvonly (RFC 3264 §6.1):
// its SENDs reach the phone; the phone's MESSAGEs for its key get 403, as the peer's SEND would (RFC 4975
// §8.9), and never reach it.
func TestSendonlyOfferAnsweredRecvonly(t *testing.T) {
	h := newHarness(t, waitReply)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	bob.EditMedia(func(m *sdp.Media) { m.Direction = sdp.SendOnly })
	cs := bob.Call(h.udp(), alice.URI, "actpass")
	if ans := string(cs.ClientDialog().InviteResponse.Body()); !strings.Contains(ans, "a=recvonly\r\n") {
		t.Fatalf("answer to a sendonly offer:\n%s", ans)
	}
	if r := cs.Send("text/plain", "a large message"); r.StatusCode != 200 {
		t.Fatalf("SEND: %d", r.StatusCode)
	}
	if got := string(alice.Recv().Body()); got != "a large message" {
		t.Fatalf("phone got %q", got)
	}
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "reply"); res.StatusCode != 403 {
		t.Fatalf("MESSAGE to a peer that does not receive: %d %s, want 403", res.StatusCode, res.Reason)
	}
	if in, ok := cs.TryRecv(300 * time.Millisecond); ok {
		t.Fatalf("the sendonly peer got a SEND: %q", in.Body)
	}
}

// A recvonly offer is answered sendonly: the peer's own SENDs get 403 (RFC 4975 §8.9) and never reach the
// phone; the phone's MESSAGEs reach the peer.
func TestRecvonlyOfferAnsweredSendonly(t *testing.T) {
	h := newHarness(t, waitReply)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	bob.EditMedia(func(m *sdp.Media) { m.Direction = sdp.RecvOnly })
	cs := bob.Call(h.udp(), alice.URI, "actpass")
	if ans := string(cs.ClientDialog().InviteResponse.Body()); !strings.Contains(ans, "a=sendonly\r\n") {
		t.Fatalf("answer to a recvonly offer:\n%s", ans)
	}
	if r := cs.Send("text/plain", "not this way"); r.StatusCode != 403 {
		t.Fatalf("SEND against our sendonly: %d, want 403", r.StatusCode)
	}
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "this way"); res.StatusCode != 200 {
		t.Fatalf("MESSAGE: %d %s, want 200", res.StatusCode, res.Reason)
	}
	if got := string(cs.Recv().Body); got != "this way" {
		t.Fatalf("peer got %q", got)
	}
	if m, ok := alice.TryRecv(300 * time.Millisecond); ok {
		t.Fatalf("the refused SEND reached the phone: %q", m.Body())
	}
}

// A file transfer offer (RFC 5547 a=file-selector) gets 488 and does not replace the key's chat session.
func TestFileTransferOfferRefused(t *testing.T) {
	h := newHarness(t, waitReply)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	cs := bob.Call(h.udp(), alice.URI, "actpass")
	bob.EditMedia(func(m *sdp.Media) {
		m.Direction, m.FileSelector = sdp.SendOnly, `name:"cat.jpg" type:text/plain size:12`
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if _, err := bob.Invite(ctx, h.udp(), alice.URI, "actpass"); testpeer.InviteCode(err) != 488 {
		t.Fatalf("file transfer INVITE: %v, want 488", err)
	}
	if r := cs.Send("text/plain", "still chatting"); r.StatusCode != 200 {
		t.Fatalf("SEND on the chat session: %d", r.StatusCode)
	}
	if got := string(alice.Recv().Body()); got != "still chatting" {
		t.Fatalf("phone got %q", got)
	}
	if n := len(h.gw.Sessions()); n != 1 {
		t.Fatalf("%d sessions, want the chat's alone", n)
	}
}

// MESSAGE first, the gateway offers and the peer answers recvonly (RFC 3264 §6.1: it only receives, the
// gateway only sends): the phone's MESSAGEs reach the peer, and a SEND the peer makes all the same gets 403
// and never reaches the phone, as when the peer offered recvonly itself (RFC 4975 §8.9).
func TestRecvonlyAnswerRefusesPeerSends(t *testing.T) {
	h := newHarness(t, waitReply)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	bob.EditMedia(func(m *sdp.Media) { m.Direction = sdp.RecvOnly })
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "this way"); res.StatusCode != 200 {
		t.Fatalf("MESSAGE: %d %s, want 200", res.StatusCode, res.Reason)
	}
	cs := bob.WaitInvite()
	if got := string(cs.Recv().Body); got != "this way" {
		t.Fatalf("peer got %q", got)
	}
	if r := cs.Send("text/plain", "not this way"); r.StatusCode != 403 {
		t.Fatalf("SEND from a peer that answered recvonly: %d, want 403", r.StatusCode)
	}
	if m, ok := alice.TryRecv(300 * time.Millisecond); ok {
		t.Fatalf("the refused SEND reached the phone: %q", m.Body())
	}
}

// RCS Large Message Mode: the sender's sendonly chat asks for a delivery notification, and the phone sends
// its IMDN as page-mode phones do, a MESSAGE of message/cpim wrapping message/imdn+xml. It is a control
// payload by what it wraps (RFC 4975 §8.9 leaves those free of the direction), as a SEND's is judged: it
// reaches the sendonly peer, where a chat text for its key gets 403.
func TestWrappedIMDNReachesSendonlyPeer(t *testing.T) {
	h := newHarness(t, waitReply)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	bob.SetTypes([]string{"message/cpim", "text/plain"}, []string{"text/plain", "message/imdn+xml"})
	bob.EditMedia(func(m *sdp.Media) { m.Direction = sdp.SendOnly })
	cs := bob.Call(h.udp(), alice.URI, "actpass")
	im := cpim.Wrap("text/plain", []byte("a large message"), cpim.WrapOptions{From: bob.URI, To: alice.URI, IMDNMessageID: "lmm1",
		Disposition: []string{cpim.PositiveDelivery}})
	if r := cs.SendOut(&msrp.Outgoing{ContentType: "message/cpim", Body: im.Marshal(), FailureReport: "yes"}); r.StatusCode != 200 {
		t.Fatalf("SEND: %d", r.StatusCode)
	}
	alice.Recv()
	imdn, err := cpim.NewDeliveryIMDN(im, cpim.StatusDelivered, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if res := alice.Send(h.udp(), bob.URI, "message/cpim", string(imdn.Marshal())); res.StatusCode != 200 {
		t.Fatalf("IMDN to the sendonly peer: %d %s, want 200", res.StatusCode, res.Reason)
	}
	if in, ok := cs.TryRecv(waitFor); !ok || !strings.Contains(string(in.Body), "imdn+xml") {
		t.Fatal("the IMDN did not reach the sendonly peer")
	}
	text := cpim.Wrap("text/plain", []byte("reply"), cpim.WrapOptions{From: alice.URI, To: bob.URI})
	if res := alice.Send(h.udp(), bob.URI, "message/cpim", string(text.Marshal())); res.StatusCode != 403 {
		t.Fatalf("CPIM chat text to the sendonly peer: %d %s, want 403", res.StatusCode, res.Reason)
	}
}
