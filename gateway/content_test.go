package gateway

import (
	"sync"
	"testing"
	"time"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/cpim"
	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/internal/testpeer"
	"github.com/msrpgw/msrpgw/msrp"
	"github.com/msrpgw/msrpgw/msrp/sdp"
)

// holdingTable is the in-memory table whose Delete waits until release is closed: a session that is ending
// stays in the table, as it does for a moment in every end (end.go).
type holdingTable struct {
	*memTable
	deleting chan struct{}
	release  chan struct{}
}

func (t *holdingTable) Delete(s *Session) bool {
	select {
	case t.deleting <- struct{}{}:
	default:
	}
	<-t.release
	return t.memTable.Delete(s)
}

// A page-mode isComposing never creates a session (SPEC §3.1), also when the one session its key had is
// ending: the table still holds it then, but it is no live session to tell, and the indication must not set up
// a new one.
func TestIsComposingDoesNotReplaceEndingSession(t *testing.T) {
	tbl := &holdingTable{memTable: newMemTable(), deleting: make(chan struct{}, 1), release: make(chan struct{})}
	h := newHarnessWith(t, nil, Options{Table: tbl})
	var once sync.Once
	release := func() { once.Do(func() { close(tbl.release) }) }
	t.Cleanup(release) // before the gateway's Close, which ends what is left
	alice := testpeer.NewPhone(t, "iscend-alice")
	bob := testpeer.NewClient(t, "iscend-bob")
	alice.Send(h.udp(), bob.URI, "text/plain", "hi")
	cs := bob.WaitInvite()
	cs.Recv()
	key := bob.URI + ":" + alice.URI
	go h.gw.EndSession(key)
	select {
	case <-tbl.deleting: // the session is ending, still in the table
	case <-time.After(waitFor):
		t.Fatal("the session did not end")
	}
	res := alice.Send(h.udp(), bob.URI, "application/im-iscomposing+xml", `<?xml version="1.0"?><isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state></isComposing>`)
	if res.StatusCode/100 != 2 {
		t.Fatalf("isComposing answered %d %s, want 2xx", res.StatusCode, res.Reason)
	}
	for _, s := range h.gw.Sessions() {
		if s.State != "ending" {
			t.Errorf("isComposing made a session: %+v", s)
		}
	}
	release()
	select {
	case cs2 := <-bob.Invites():
		t.Fatalf("isComposing set up a session: INVITE %s", cs2.CallID)
	case <-time.After(300 * time.Millisecond):
	}
}

// A page-mode IMDN travels as message/cpim wrapping message/imdn+xml (RFC 5438, as RCS phones send them in
// page mode): it is a control payload by what it wraps, so its failure after the 202 is counted but not quoted
// back to the phone as chat text (SPEC §4), any more than a bare one's. A CPIM-wrapped chat text failing the
// same way is notified.
func TestWrappedControlFailureNotNotified(t *testing.T) {
	h := newHarness(t, nil) // reply: accept
	alice := testpeer.NewPhone(t, "wrapctl-alice")
	bob := testpeer.NewClient(t, "wrapctl-bob")
	bob.SetTypes([]string{"message/cpim", "text/plain"}, []string{"text/plain", "message/imdn+xml"})
	alice.Send(h.udp(), bob.URI, "text/plain", "hi")
	cs := bob.WaitInvite()
	cs.Recv()
	h.events.waitKind(t, event.MessageDelivered) // answered 200 before the peer turns to 500
	cs.SetReply(500)
	im := cpim.Wrap("text/plain", []byte("x"), cpim.WrapOptions{From: bob.URI, To: alice.URI, IMDNMessageID: "m1"})
	imdn, err := cpim.NewDeliveryIMDN(im, cpim.StatusDelivered, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if res := alice.Send(h.udp(), bob.URI, "message/cpim", string(imdn.Marshal())); res.StatusCode != 202 {
		t.Fatalf("IMDN answered %d, want 202", res.StatusCode)
	}
	if e := h.events.waitKind(t, event.MessageFailed); e.Code != 500 {
		t.Fatalf("message_failed %+v, want 500", e)
	}
	if n, ok := alice.TryRecv(300 * time.Millisecond); ok {
		t.Fatalf("the phone got its own IMDN quoted back as chat text: %q", n.Body())
	}
	text := cpim.Wrap("text/plain", []byte("are you there?"), cpim.WrapOptions{From: alice.URI, To: bob.URI})
	alice.Send(h.udp(), bob.URI, "message/cpim", string(text.Marshal()))
	if _, ok := alice.TryRecv(waitFor); !ok {
		t.Fatal("no failure notification for a CPIM-wrapped chat text")
	}
}

// $excerpt is the first 60 characters of the failed message (SPEC §6): of a CPIM-wrapped text, the text, not
// the CPIM headers in front of it, which alone fill the 60 characters.
func TestFailureNotificationExcerptOfCPIM(t *testing.T) {
	h := newHarness(t, nil) // reply: accept
	alice := testpeer.NewPhone(t, "wrapexc-alice")
	bob := testpeer.NewClient(t, "wrapexc-bob")
	bob.SetTypes([]string{"message/cpim", "text/plain"}, []string{"text/plain"})
	bob.SetReply(500)
	text := cpim.Wrap("text/plain;charset=UTF-8", []byte("Grüße, are you there?"), cpim.WrapOptions{From: alice.URI, To: bob.URI})
	if res := alice.Send(h.udp(), bob.URI, "message/cpim", string(text.Marshal())); res.StatusCode != 202 {
		t.Fatalf("MESSAGE answered %d, want 202", res.StatusCode)
	}
	if got, want := string(alice.Recv().Body()), "Message not delivered (500 Server Internal Error): Grüße, are you there?"; got != want {
		t.Fatalf("notification %q, want %q", got, want)
	}
}

// A page-mode isComposing never sets up a session (SPEC §3.1), bare or wrapped in CPIM as RCS phones send
// it; it is answered 202 and dropped. A CPIM-wrapped chat text to the same user does set one up.
func TestIsComposingSetsUpNothing(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "iscnone-alice")
	bob := testpeer.NewClient(t, "iscnone-bob")
	isc := []byte(`<?xml version="1.0"?><isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state></isComposing>`)
	wrap := func(ctype string, body []byte) string {
		return string(cpim.Wrap(ctype, body, cpim.WrapOptions{From: alice.URI, To: bob.URI, Now: time.Now()}).Marshal())
	}
	for _, m := range []struct{ ctype, body string }{
		{cpim.IsComposingType, string(isc)},
		{ctypeCPIM, wrap(cpim.IsComposingType, isc)},
	} {
		if res := alice.Send(h.udp(), bob.URI, m.ctype, m.body); res.StatusCode != 202 {
			t.Fatalf("%s isComposing answered %d %s, want 202", m.ctype, res.StatusCode, res.Reason)
		}
		select {
		case cs := <-bob.Invites():
			t.Fatalf("a %s isComposing set up a session: INVITE %s", m.ctype, cs.CallID)
		case <-time.After(300 * time.Millisecond):
		}
		if n := len(h.gw.Sessions()); n != 0 {
			t.Fatalf("a %s isComposing made %d sessions", m.ctype, n)
		}
	}
	if res := alice.Send(h.udp(), bob.URI, ctypeCPIM, wrap("text/plain", []byte("hi"))); res.StatusCode != 202 {
		t.Fatalf("CPIM-wrapped text answered %d %s, want 202", res.StatusCode, res.Reason)
	}
	bob.WaitInvite()
}

// A control payload the gateway consumes itself (dropped, SPEC §4) was received whole all the same: a SEND
// asking for it with Success-Report: yes gets its success REPORT (RFC 4975 §7.1.3: the receiver MUST report
// every byte it received), bare or wrapped in CPIM, as a chat text delivered to the page-mode user does. Never
// answered, the peer flags the indication (or its IMDN) as undelivered when its report timer fires.
func TestDroppedControlGetsSuccessReport(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "ctlrep-alice")
	bob := testpeer.NewClient(t, "ctlrep-bob")
	bob.SetTypes([]string{"message/cpim", "text/plain", "application/im-iscomposing+xml"}, []string{"text/plain", "message/imdn+xml"})
	cs := bob.Call(h.udp(), alice.URI, "active")
	isc := `<?xml version="1.0"?><isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state></isComposing>`
	wrapped := cpim.Wrap(cpim.IsComposingType, []byte(isc), cpim.WrapOptions{From: bob.URI, To: alice.URI}).Marshal()
	for _, m := range []struct{ ctype, body string }{
		{cpim.IsComposingType, isc},
		{ctypeCPIM, string(wrapped)},
	} {
		r := cs.SendOut(&msrp.Outgoing{ContentType: m.ctype, Body: []byte(m.body), SuccessReport: true})
		if r.StatusCode != 200 {
			t.Fatalf("%s SEND answered %d", m.ctype, r.StatusCode)
		}
		rep, ok := tryRecvReport(cs, waitFor)
		if !ok {
			t.Fatalf("%s control payload with Success-Report: yes got no success REPORT", m.ctype)
		}
		if rep.StatusCode != 200 {
			t.Fatalf("%s control payload: REPORT %d %q, want 200", m.ctype, rep.StatusCode, rep.Comment)
		}
	}
	alice.Quiet(200 * time.Millisecond)
	// Without Success-Report, none.
	cs.SendOut(&msrp.Outgoing{ContentType: cpim.IsComposingType, Body: []byte(isc)})
	cs.NoReport(300 * time.Millisecond)
}

func tryRecvReport(cs *testpeer.ClientSession, d time.Duration) (*msrp.Report, bool) {
	select {
	case r := <-cs.Reports():
		return r, true
	case <-time.After(d):
		return nil, false
	}
}

// A control payload is never quoted back to the phone as chat text (SPEC §4): when the MESSAGE that set up a
// session that failed is one (an IMDN for a chat whose session is gone, wrapped in CPIM as page-mode phones
// send it), the setup-failed notification still goes, but its $excerpt is empty, as failure_notify sends none
// for a control payload at all.
func TestSetupFailedNotificationExcerptOfControl(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Gateway.SetupFailed.Body = "Not sent ($code $reason): $excerpt"
	})
	alice := testpeer.NewPhone(t, "sfctl-alice")
	busy := testpeer.NewClient(t, "sfctl-busy")
	busy.SetAnswer(486, "")
	im := cpim.Wrap("text/plain", []byte("x"), cpim.WrapOptions{From: busy.URI, To: alice.URI, IMDNMessageID: "m1"})
	imdn, err := cpim.NewDeliveryIMDN(im, cpim.StatusDelivered, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	alice.Send(h.udp(), busy.URI, "message/cpim", string(imdn.Marshal()))
	if got, want := string(alice.Recv().Body()), "Not sent (486 Busy Here): "; got != want {
		t.Fatalf("setup-failed notification %q, want %q", got, want)
	}
}

// $excerpt is a notification variable (SPEC §6, config/REFERENCE.md), accepted in setup_failed.body as in
// failure_notify.body: there it is the first 60 characters of the MESSAGE whose session failed to come up (the
// one that set it up; of a CPIM one, the text it wraps), not an empty string.
func TestSetupFailedNotificationExcerpt(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Gateway.SetupFailed.Body = "Not sent ($code $reason): $excerpt"
	})
	alice := testpeer.NewPhone(t, "sfexc-alice")
	busy := testpeer.NewClient(t, "sfexc-busy")
	busy.SetAnswer(486, "")
	alice.Send(h.udp(), busy.URI, "text/plain", "are you there?")
	if got, want := string(alice.Recv().Body()), "Not sent (486 Busy Here): are you there?"; got != want {
		t.Fatalf("setup-failed notification %q, want %q", got, want)
	}
	busy2 := testpeer.NewClient(t, "sfexc-busy2")
	busy2.SetAnswer(486, "")
	text := cpim.Wrap("text/plain;charset=UTF-8", []byte("Grüße, are you there?"), cpim.WrapOptions{From: alice.URI, To: busy2.URI})
	alice.Send(h.udp(), busy2.URI, "message/cpim", string(text.Marshal()))
	if got, want := string(alice.Recv().Body()), "Not sent (486 Busy Here): Grüße, are you there?"; got != want {
		t.Fatalf("setup-failed notification %q, want %q", got, want)
	}
}

// A CPIM message whose encapsulated entity has no Content-Type is text/plain (RFC 2045 §5.2, as
// cpim.Message.IsControl has it): it reaches the page-mode user as text/plain, not a 415.
func TestCPIMWithoutInnerContentTypeIsTextPlain(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "rc-alice")
	bob := testpeer.NewClient(t, "rc-bob")
	bob.SetTypes([]string{"message/cpim"}, []string{"text/plain"})
	cs := bob.Call(h.udp(), alice.URI, "actpass")
	doc := "From: <" + bob.URI + ">\r\nTo: <" + alice.URI + ">\r\nDateTime: 2024-01-01T00:00:00.000Z\r\n\r\n" +
		"Content-Transfer-Encoding: 8bit\r\n\r\nhello without type"
	r := cs.Send("message/cpim", doc)
	if r.StatusCode != 200 {
		t.Fatalf("CPIM SEND without inner Content-Type answered %d %s, want 200", r.StatusCode, r.Comment)
	}
	m := alice.Recv()
	if string(m.Body()) != "hello without type" {
		t.Fatalf("page-mode user got %q", m.Body())
	}
}

// A page-mode phone sends its IMDN bare (message/imdn+xml); the peer lists message/cpim first, so the gateway
// wraps it. The CPIM message it builds is an IMDN, which RFC 5438 §7.2.1 says carries its own imdn.Message-ID
// (and NS imdn). With the default config (gateway.imdn.request: false) the gateway leaves it out.
func TestWrappedIMDNHasMessageID(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	bob.SetTypes([]string{"message/cpim", "application/im-iscomposing+xml"}, []string{"text/plain", "message/imdn+xml"})

	alice.Send(h.udp(), bob.URI, "text/plain", "hi")
	cs := bob.WaitInvite()
	cs.Recv()
	note := cpim.Notification{MessageID: "abc", DateTime: "2024-01-01T00:00:00Z", RecipientURI: alice.URI, Kind: cpim.KindDelivery, Status: cpim.StatusDelivered}
	alice.Send(h.udp(), bob.URI, cpim.IMDNType, string(note.Marshal()))
	m := cs.Recv()
	c, err := cpim.Parse(m.Body)
	if err != nil || m.ContentType != "message/cpim" || c.ContentType() != cpim.IMDNType {
		t.Fatalf("SEND %s: %v\n%s", m.ContentType, err, m.Body)
	}
	if c.IMDNMessageID() == "" {
		t.Fatalf("the IMDN the gateway wrapped in CPIM has no imdn.Message-ID (RFC 5438 §7.2.1):\n%s", m.Body)
	}
}

// A message the gateway wrapped in CPIM asking for IMDNs (gateway.imdn.request) is sent again on the session
// that replaced the first one, under the same MSRP Message-ID (RFC 4975 §5.4: the same message, a duplicate to
// its receiver). It must be the same IM: the same imdn.Message-ID (which its IMDNs name, and by which the
// receiver recognises it) and DateTime. The gateway wraps it anew on every send.
func TestResentMessageKeepsIMDNMessageID(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Gateway.Message.Reply = "wait"
		c.Gateway.Message.ReplyWait = 200 * time.Millisecond
		c.Gateway.IMDN.Request = true
	})
	alice := testpeer.NewPhone(t, "alice")
	bob, relay := behindRelay(t, "bob")
	bob.SetTypes([]string{"message/cpim", "text/plain"}, []string{"text/plain", "message/imdn+xml"})
	relay.SetDropReports(true)
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "moving"); res.StatusCode != 202 {
		t.Fatalf("MESSAGE answered %d, want 202", res.StatusCode)
	}
	old := bob.WaitInvite()
	first := old.Recv()
	relay.SetDropReports(false)
	time.Sleep(5 * time.Millisecond)                       // a later DateTime would show too
	heir := bob.Call(h.udp(), alice.URI, sdp.SetupPassive) // same key: replaces the session
	old.WaitBye()
	again := heir.Recv()
	if again.MessageID != first.MessageID {
		t.Fatalf("Message-ID %q, want %q", again.MessageID, first.MessageID)
	}
	c1, err1 := cpim.Parse(first.Body)
	c2, err2 := cpim.Parse(again.Body)
	if err1 != nil || err2 != nil {
		t.Fatalf("CPIM: %v %v", err1, err2)
	}
	if c1.IMDNMessageID() != c2.IMDNMessageID() || c1.Get("DateTime") != c2.Get("DateTime") {
		t.Fatalf("the same message (MSRP Message-ID %s) sent again as a different IM:\n first imdn.Message-ID %q DateTime %q\n again imdn.Message-ID %q DateTime %q",
			first.MessageID, c1.IMDNMessageID(), c1.Get("DateTime"), c2.IMDNMessageID(), c2.Get("DateTime"))
	}
}

// Unwrapping CPIM, the gateway is the CPIM endpoint (SPEC §5). RFC 3862 §3.5/§4.7 (PROTOCOL.md §4.1: "unknown
// headers ignored unless named in `Require`"; RFC 4975 §13: MSRP endpoints MUST recognise Require): a message
// whose Require names a header the gateway does not understand cannot be processed by ignoring that header.
// The gateway strips the CPIM layer, required header and all, and delivers the content as if it were plain.
func TestCPIMRequireUnknownHeaderRefused(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	bob.SetTypes([]string{"message/cpim", "text/plain"}, []string{"text/plain"})
	cs := bob.Call(h.udp(), alice.URI, "active")
	doc := "From: <" + bob.URI + ">\r\nTo: <" + alice.URI + ">\r\nDateTime: 2024-03-01T10:00:00Z\r\n" +
		"NS: MyFeatures <mid:MessageFeatures@id.foo.com>\r\n" +
		"Require: MyFeatures.VitalMessageOption\r\n" +
		"MyFeatures.VitalMessageOption: Confirmation-requested\r\n\r\n" +
		"Content-Type: text/plain\r\n\r\nonly if you understand VitalMessageOption"
	r := cs.Send("message/cpim", doc)
	if r.StatusCode != 415 {
		t.Errorf("SEND requiring an unknown CPIM header answered %d, want 415", r.StatusCode)
	}
	if m, ok := alice.TryRecv(300 * time.Millisecond); ok {
		t.Fatalf("SEND answered %d; the page-mode user got %s %q: the CPIM layer with its required header "+
			"MyFeatures.VitalMessageOption was dropped as if unknown headers could always be ignored",
			r.StatusCode, m.ContentType().Value(), m.Body())
	}
}
