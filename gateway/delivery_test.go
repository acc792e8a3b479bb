package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"mime"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/cpim"
	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/internal/testpeer"
	"github.com/msrpgw/msrpgw/msrp"
	"github.com/msrpgw/msrpgw/msrp/sdp"
)

// SPEC §5 table 1 in `wait` mode: the MESSAGE's final response follows what happened on the MSRP side.
func TestWaitModeResponses(t *testing.T) {
	wait := func(c *config.Config) {
		c.Gateway.Message.Reply = "wait"
		c.Gateway.Message.ReplyWait = 2 * time.Second
		c.Gateway.SetupTimeout = 600 * time.Millisecond
	}
	cases := []struct {
		name    string
		prepare func(bob *testpeer.Client)
		sendRep int // the client's response to SENDs (0: 200)
		want    int
		report  int // a failure REPORT the client sends before its response (0: none)
		failed  int // the code setup_failed carries: the INVITE's own response (0: the setup does not fail)
	}{
		{"delivered", nil, 0, 200, 0, 0},
		{"SEND 413", nil, 413, 413, 0, 0},
		{"SEND 415", nil, 415, 415, 0, 0},
		{"SEND 403", nil, 403, 403, 0, 0},
		{"SEND 481", nil, 481, 480, 0, 0},
		{"SEND 506", nil, 506, 480, 0, 0},
		{"SEND 501", nil, 501, 500, 0, 0},
		{"failure REPORT 481", nil, 0, 480, 481, 0},
		{"failure REPORT 408", nil, 0, 408, 408, 0},
		{"failure REPORT 500", nil, 0, 500, 500, 0},
		{"INVITE 486", func(b *testpeer.Client) { b.SetAnswer(486, "") }, 0, 486, 0, 486},
		{"INVITE 603", func(b *testpeer.Client) { b.SetAnswer(603, "") }, 0, 603, 0, 603},
		{"INVITE 488", func(b *testpeer.Client) { b.SetAnswer(488, "") }, 0, 415, 0, 488},
		{"INVITE 606", func(b *testpeer.Client) { b.SetAnswer(606, "") }, 0, 415, 0, 606},
		{"INVITE 302", func(b *testpeer.Client) { b.SetAnswer(302, "") }, 0, 480, 0, 302},
		{"no answer", func(b *testpeer.Client) { b.SetAnswer(0, "") }, 0, 408, 0, 408},
		{"TCP refused", func(b *testpeer.Client) { b.Endpoint.Close() }, 0, 480, 0, 480},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, wait)
			alice := testpeer.NewPhone(t, "alice")
			bob := testpeer.NewClient(t, "bob")
			if c.prepare != nil {
				c.prepare(bob)
			}
			bob.SetReply(c.sendRep)
			bob.SetReportFailure(c.report)
			res := alice.Send(h.udp(), bob.URI, "text/plain", "hello")
			if res.StatusCode != c.want {
				t.Fatalf("MESSAGE answered %d %s, want %d", res.StatusCode, res.Reason, c.want)
			}
			if c.want == 415 && res.GetHeader("Accept") == nil {
				t.Fatal("415 without Accept")
			}
			if c.failed != 0 {
				e := h.events.waitKind(t, event.SetupFailed)
				if e.Code != c.failed || e.Reason == "" {
					t.Fatalf("setup_failed: %d %q, want %d and a reason", e.Code, e.Reason, c.failed)
				}
				// Passed on as it came ("the same code and reason"), or the gateway's own when no response came.
				if c.want == c.failed && res.Reason != e.Reason {
					t.Fatalf("MESSAGE answered %d %q, want the reason %q of setup_failed", res.StatusCode, res.Reason, e.Reason)
				}
			}
		})
	}
}

// SPEC §5 table 1, "SEND transaction timeout (30 s) → 408": the peer reads the SEND and answers it only after
// msrp.transaction_timeout. The MESSAGE gets 408 (not the 480 of a lost connection, nor a 200 once the late
// answer comes), and the session carries on.
func TestWaitModeSendTimeoutIs408(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Gateway.Message.Reply = "wait"
		c.Gateway.Message.ReplyWait = 3 * time.Second
		c.MSRP.TransactionTimeout = 300 * time.Millisecond
	})
	alice := testpeer.NewPhone(t, "tt-alice")
	bob := testpeer.NewClient(t, "tt-bob")
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "prompt"); res.StatusCode != 200 {
		t.Fatalf("first MESSAGE answered %d %s, want 200", res.StatusCode, res.Reason)
	}
	cs := bob.WaitInvite()
	cs.Recv()
	cs.SetReplyDelay(time.Second)
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "slow"); res.StatusCode != 408 {
		t.Fatalf("MESSAGE whose SEND timed out answered %d %s, want 408", res.StatusCode, res.Reason)
	}
	if e := h.events.waitKind(t, event.MessageFailed); e.Code != 408 || e.Direction != event.ToMSRP {
		t.Fatalf("failure counted as %d %s", e.Code, e.Direction)
	}
	cs.Recv()
	cs.SetReplyDelay(0)
	time.Sleep(time.Second) // the peer answers SENDs in order: the late 200 first
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "again"); res.StatusCode != 200 {
		t.Fatalf("MESSAGE after the timeout answered %d %s, want 200", res.StatusCode, res.Reason)
	}
}

// setup_timeout passing after the INVITE's 2xx, the peer having said it connects and never doing so: BYE, and
// the setup fails with 480 (SPEC §3.1 step 6: "after the 2xx: BYE, code 480"), not the 408 of a setup the
// peer never answered: for the MESSAGE, the setup-failed event and the one notification alike.
func TestSetupTimeoutAfterAnswerIs480(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Gateway.Message.Reply = "wait"
		c.Gateway.SetupTimeout = 500 * time.Millisecond
	})
	alice := testpeer.NewPhone(t, "st-alice")
	bob := testpeer.NewClient(t, "st-bob")
	bob.EditMedia(func(m *sdp.Media) { m.Setup = sdp.SetupActive }) // "I connect", and it never does

	if res := alice.Send(h.udp(), bob.URI, "text/plain", "anyone?"); res.StatusCode != 480 {
		t.Fatalf("MESSAGE answered %d %s, want 480", res.StatusCode, res.Reason)
	}
	e := h.events.waitKind(t, event.SetupFailed)
	if e.Code != 480 || e.Reason == "" {
		t.Fatalf("setup_failed: %d %q, want 480 and a reason", e.Code, e.Reason)
	}
	if got, want := string(alice.Recv().Body()), "Failed to establish session, error: 480 "+e.Reason; got != want {
		t.Fatalf("notification %q, want %q", got, want)
	}
	bob.WaitInvite().WaitBye()
	alice.Quiet(300 * time.Millisecond) // exactly one notification
}

// Nothing decisive within reply_wait: 202, and a later failure becomes a notification MESSAGE.
func TestWaitModeSlowPeerThen202(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Gateway.Message.Reply = "wait"
		c.Gateway.Message.ReplyWait = 200 * time.Millisecond
		c.Gateway.SetupTimeout = 800 * time.Millisecond
	})
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	bob.SetAnswer(0, "") // never answers: the setup outlives reply_wait

	res := alice.Send(h.udp(), bob.URI, "text/plain", "slow one")
	if res.StatusCode != 202 {
		t.Fatalf("got %d, want 202 after reply_wait", res.StatusCode)
	}
	// The setup then fails: one setup-failed notification covers the message.
	if got := string(alice.Recv().Body()); got != "Failed to establish session, error: 408 Request Timeout" {
		t.Fatalf("notification %q", got)
	}
	alice.Quiet(300 * time.Millisecond)
}

// After a 202 (accept mode), a failed SEND reaches the sender as one failure notification.
func TestFailureNotification(t *testing.T) {
	h := newHarness(t, nil) // reply: accept
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	bob.SetReply(415)
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "this will be refused by the peer"); res.StatusCode != 202 {
		t.Fatalf("got %d", res.StatusCode)
	}
	n := alice.Recv()
	if got, want := string(n.Body()), "Message not delivered (415 Unsupported Media Type): this will be refused by the peer"; got != want {
		t.Fatalf("notification %q, want %q", got, want)
	}
	e := h.events.waitKind(t, event.MessageFailed)
	if e.Code != 415 || e.Direction != event.ToMSRP {
		t.Fatalf("event %+v", e)
	}
}

// The notification MESSAGEs follow their configuration (SPEC §5, §6): gateway.failure_notify.body and
// gateway.setup_failed.body are templates over $code $reason $key $excerpt, and notify: false switches each off,
// the failure still counted and the setup_failed event still raised.
func TestNotificationBodiesAndSwitches(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(map[bool]string{true: "templates", false: "off"}[on], func(t *testing.T) {
			h := newHarness(t, func(c *config.Config) {
				c.Gateway.FailureNotify.Notify = on
				c.Gateway.FailureNotify.Body = "[$key] $code/$reason: $excerpt"
				c.Gateway.SetupFailed.Notify = on
				c.Gateway.SetupFailed.Body = "[$key] no session: $code/$reason"
			})
			alice := testpeer.NewPhone(t, "alice")
			busy := testpeer.NewClient(t, "busy")
			busy.SetAnswer(486, "")
			if res := alice.Send(h.udp(), busy.URI, "text/plain", "ring"); res.StatusCode != 202 {
				t.Fatalf("MESSAGE answered %d, want 202", res.StatusCode)
			}
			if e := h.events.waitKind(t, event.SetupFailed); e.Code != 486 {
				t.Fatalf("setup_failed %+v", e)
			}
			if on {
				if got, want := string(alice.Recv().Body()), "["+busy.URI+":"+alice.URI+"] no session: 486/Busy Here"; got != want {
					t.Fatalf("setup-failed notification %q, want %q", got, want)
				}
			}
			bob := testpeer.NewClient(t, "bob")
			bob.SetReply(415)
			if res := alice.Send(h.udp(), bob.URI, "text/plain", "refused by the peer"); res.StatusCode != 202 {
				t.Fatalf("MESSAGE answered %d, want 202", res.StatusCode)
			}
			e := h.events.waitKind(t, event.MessageFailed)
			for e.Code == 486 { // the first message's, failed with its setup
				e = h.events.waitKind(t, event.MessageFailed)
			}
			if e.Code != 415 {
				t.Fatalf("message_failed %+v", e)
			}
			if on {
				if got, want := string(alice.Recv().Body()), "["+bob.URI+":"+alice.URI+"] 415/Unsupported Media Type: refused by the peer"; got != want {
					t.Fatalf("failure notification %q, want %q", got, want)
				}
			}
			alice.Quiet(300 * time.Millisecond)
		})
	}
}

// A page-mode isComposing that fails on the MSRP side after its 202 is counted as failed, but no failure
// notification quotes it back to the phone: it is a control payload, never chat text (SPEC §4). A text
// message failing the same way is notified.
func TestControlFailureNotNotified(t *testing.T) {
	h := newHarness(t, nil) // reply: accept
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	bob.SetTypes([]string{"text/plain", "application/im-iscomposing+xml"}, nil)
	alice.Send(h.udp(), bob.URI, "text/plain", "hi")
	cs := bob.WaitInvite()
	cs.Recv()
	h.events.waitKind(t, event.MessageDelivered) // answered 200 before the peer turns to 500
	cs.SetReply(500)
	isc := `<?xml version="1.0"?><isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state></isComposing>`
	if res := alice.Send(h.udp(), bob.URI, "application/im-iscomposing+xml", isc); res.StatusCode != 202 {
		t.Fatalf("isComposing answered %d, want 202", res.StatusCode)
	}
	if e := h.events.waitKind(t, event.MessageFailed); e.Code != 500 {
		t.Fatalf("message_failed %+v, want 500", e)
	}
	alice.Quiet(300 * time.Millisecond)
	alice.Send(h.udp(), bob.URI, "text/plain", "are you there?")
	if got := string(alice.Recv().Body()); !strings.Contains(got, "are you there?") {
		t.Fatalf("failure notification %q, want the text quoted", got)
	}
}

// SPEC §5 table 2: the page-mode side's final response becomes the REPORT the SEND asked for.
func TestReportRules(t *testing.T) {
	cases := []struct {
		answer     int
		wantStatus int // 0: no REPORT
		success    bool
	}{
		{200, 200, true},
		{202, 200, true},
		{200, 0, false}, // no Success-Report: no success REPORT
		{404, 403, false},
		{408, 408, false},
		{480, 408, false},
		{503, 408, false},
		{504, 408, false},
		{413, 413, false},
		{415, 415, false},
		{488, 415, false},
		{500, 403, false},
		{603, 403, false},
	}
	for _, c := range cases {
		name := itoa(c.answer) + " " + testpeer.Reason(c.answer)
		if c.success {
			name += " success-report"
		}
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, nil)
			alice := testpeer.NewPhone(t, "alice")
			alice.SetAnswer(c.answer)
			bob := testpeer.NewClient(t, "bob")
			cs := bob.Call(h.udp(), alice.URI, "actpass")
			r := cs.SendOut(&msrp.Outgoing{ContentType: "text/plain", Body: []byte("report me"), SuccessReport: c.success})
			if r.StatusCode != 200 {
				t.Fatalf("SEND answered %d", r.StatusCode)
			}
			alice.Recv()
			if c.wantStatus == 0 {
				cs.NoReport(300 * time.Millisecond)
				return
			}
			rep := cs.Report()
			if rep.StatusCode != c.wantStatus {
				t.Fatalf("REPORT %d %q, want %d", rep.StatusCode, rep.Comment, c.wantStatus)
			}
			if want := itoa(c.answer) + " " + testpeer.Reason(c.answer); c.wantStatus != 200 && rep.Comment != want {
				t.Fatalf("REPORT comment %q, want the SIP code and reason %q", rep.Comment, want)
			}
		})
	}
}

// Failure-Report partial and no: exactly the responses and REPORTs the rules allow.
func TestFailureReportPartialAndNo(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	alice.SetAnswer(404)
	bob := testpeer.NewClient(t, "bob")
	cs := bob.Call(h.udp(), alice.URI, "actpass")
	// no: no response at all, no REPORT.
	cs.SendOut(&msrp.Outgoing{ContentType: "text/plain", Body: []byte("fr no"), FailureReport: "no"})
	alice.Recv()
	cs.NoReport(300 * time.Millisecond)
	// partial: no 200, but the failure comes back as a REPORT.
	cs.SendOut(&msrp.Outgoing{ContentType: "text/plain", Body: []byte("fr partial"), FailureReport: "partial"})
	alice.Recv()
	if rep := cs.Report(); rep.StatusCode != 403 {
		t.Fatalf("REPORT %d, want 403", rep.StatusCode)
	}
}

// SPEC §5: a refusal the gateway makes at once (415 type not offered, 400 no Message-ID, 413 too large) is the
// SEND's response when its Failure-Report allows one (yes, partial), and never also a REPORT; with
// Failure-Report: no the refused message gets nothing at all and is dropped, counted (message_failed, or the
// msrp stack's request_refused) with its code.
// Raw frames, as the msrp stack completes a partial or no Send of its own without waiting for a response. A
// SEND that follows on the connection marks the end: the gateway answers SENDs in order, a REPORT made while
// handling one goes out right after its response, so every frame about the refused SEND comes before the 200.
func TestImmediateRefusalPerFailureReport(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "imm-alice")
	bob := testpeer.NewClient(t, "imm-bob")
	p := newRawPeer(t, h, bob, alice.URI)
	n := 0
	for _, c := range []struct {
		name, ctype, body string
		code              int
		noMessageID       bool
	}{
		{"type not offered", "application/octet-stream", "bin", 415, false},
		{"no Message-ID", "text/plain", "which one?", 400, true},
		{"too large", "text/plain", strings.Repeat("x", 100*1024), 413, false},
	} {
		for _, fr := range []string{"yes", "partial", "no"} {
			n++
			what := c.name + ", Failure-Report " + fr
			failed := func() int {
				return h.events.countWhere(func(e event.Event) bool {
					return e.Direction != event.ToMSRP && e.Code == c.code && (e.Kind == event.MessageFailed || e.Kind == event.RequestRefused)
				})
			}
			before := failed()
			tid, next := fmt.Sprintf("refused%03d", n), fmt.Sprintf("marker%03d", n)
			hdrs := []string{fmt.Sprintf("Byte-Range: 1-%d/%d", len(c.body), len(c.body)), "Failure-Report: " + fr,
				"Success-Report: yes", "Content-Type: " + c.ctype}
			if !c.noMessageID {
				hdrs = append(hdrs, "Message-ID: mid-"+tid)
			}
			p.write(msrpFrame("SEND", tid, p.gw, p.self, hdrs, c.body, '$'))
			p.write(sendFrame(next, p.gw, p.self, "mid-"+next, what))
			var got []string
			for {
				m := p.next()
				if m.Method == "" && m.TransactionID == next {
					if m.StatusCode != 200 {
						t.Fatalf("%s: the SEND after it answered %d", what, m.StatusCode)
					}
					break
				}
				got = append(got, fmt.Sprintf("%s %s %d %s", m.Method, m.TransactionID, m.StatusCode, m.Header("Status")))
			}
			want := []string{fmt.Sprintf(" %s %d ", tid, c.code)}
			if fr == "no" {
				want = nil
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: the gateway sent %q before answering the next SEND, want %q", what, got, want)
			}
			if m := alice.Recv(); string(m.Body()) != what {
				t.Fatalf("%s: page-mode user got %q", what, m.Body())
			}
			if k := failed() - before; k != 1 {
				t.Fatalf("%s: counted %d times as failed with %d, want once", what, k, c.code)
			}
		}
	}
}

// A 6000-byte message in 3 chunks arrives as ONE MESSAGE (over TCP); an aborted one never arrives;
// 100 KiB gets 413 both ways.
func TestLargeMessages(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	cs := bob.Call(h.udp(), alice.URI, "actpass")
	big := strings.Repeat("0123456789", 600)
	if r := cs.Send("text/plain", big); r.StatusCode != 200 {
		t.Fatalf("chunked SEND: %+v", r)
	}
	m := alice.Recv()
	if string(m.Body()) != big {
		t.Fatalf("MESSAGE body %d bytes, want %d", len(m.Body()), len(big))
	}
	if tr := m.Transport(); !strings.EqualFold(tr, "TCP") {
		t.Fatalf("a %d-byte MESSAGE went over %s, want TCP", len(big), tr)
	}
	huge := strings.Repeat("x", 100*1024)
	if r := cs.Send("text/plain", huge); r.StatusCode != 413 {
		t.Fatalf("100 KiB SEND: %+v, want 413", r)
	}
	alice.Quiet(300 * time.Millisecond)
	req := alice.NewMessage(bob.URI, "text/plain", huge)
	req.SetTransport("TCP")
	req.SetDestination(h.gw.SIPAddr("tcp"))
	res, err := doReq(alice.SIPClient(), req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 413 {
		t.Fatalf("100 KiB MESSAGE: %d, want 413", res.StatusCode)
	}
}

// A generated MESSAGE goes over TCP whenever it would be over 1300 bytes on the wire, whatever makes it long:
// here a short body and a long Request-URI and To (SPEC §4, RFC 3261 §18.1.1); a short one stays on UDP.
func TestGeneratedMessageSizeDecidesTransport(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	cs := bob.Call(h.udp(), alice.URI+";x="+strings.Repeat("a", 300), "actpass")
	for _, body := range []string{"short", strings.Repeat("b", 500)} {
		if r := cs.Send("text/plain", body); r.StatusCode != 200 {
			t.Fatalf("SEND: %+v", r)
		}
		m := alice.Recv()
		size, tr := len(m.String()), m.Transport()
		t.Logf("%d-byte body: %d bytes over %s", len(body), size, tr)
		if want := map[bool]string{false: "UDP", true: "TCP"}[size > 1300]; !strings.EqualFold(tr, want) {
			t.Errorf("a %d-byte MESSAGE (body %d) went over %s, want %s", size, len(body), tr, want)
		}
	}
}

// An RCS-style client (CPIM only at top level) chats both ways with a page-mode phone: the gateway wraps and
// unwraps CPIM, sends the IMDN `delivered` on a 200, and never shows isComposing as text.
func TestRCSClientCPIM(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	bob.SetTypes([]string{"message/cpim", "application/im-iscomposing+xml"}, []string{"text/plain", "message/imdn+xml"})

	alice.Send(h.udp(), bob.URI, "text/plain", "hi rcs")
	cs := bob.WaitInvite()
	m := cs.Recv()
	if m.ContentType != "message/cpim" {
		t.Fatalf("SEND to an RCS peer is %s, want message/cpim", m.ContentType)
	}
	c, err := cpim.Parse(m.Body)
	if err != nil {
		t.Fatal(err)
	}
	if string(c.Body) != "hi rcs" || !strings.HasPrefix(c.ContentType(), "text/plain") || c.From() != alice.URI || c.To() != bob.URI {
		t.Fatalf("CPIM: from %s to %s %s %q", c.From(), c.To(), c.ContentType(), c.Body)
	}

	// The RCS side answers in CPIM asking for a delivery notification.
	w := cpim.Wrap("text/plain", []byte("hello page mode"), cpim.WrapOptions{From: bob.URI, To: alice.URI, Now: time.Now(), IMDNMessageID: "imdn-1", Disposition: []string{"positive-delivery"}})
	if r := cs.Send("message/cpim", string(w.Marshal())); r.StatusCode != 200 {
		t.Fatalf("CPIM SEND: %+v", r)
	}
	got := alice.Recv()
	if string(got.Body()) != "hello page mode" || !strings.HasPrefix(got.ContentType().Value(), "text/plain") {
		t.Fatalf("page-mode user got %s %q", got.ContentType().Value(), got.Body())
	}
	imdn := cs.Recv()
	n, err := cpim.Parse(imdn.Body)
	if err != nil {
		t.Fatalf("IMDN: %v", err)
	}
	note, err := cpim.ParseNotification(n.Body)
	if err != nil || note.Status != "delivered" || note.MessageID != "imdn-1" {
		t.Fatalf("IMDN %+v %v", note, err)
	}

	// isComposing never reaches the phone as text.
	isc := cpim.Wrap("application/im-iscomposing+xml", []byte(`<?xml version="1.0"?><isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state></isComposing>`), cpim.WrapOptions{From: bob.URI, To: alice.URI, Now: time.Now()})
	if r := cs.Send("message/cpim", string(isc.Marshal())); r.StatusCode != 200 {
		t.Fatalf("isComposing SEND: %+v", r)
	}
	if r := cs.Send("application/im-iscomposing+xml", `<?xml version="1.0"?><isComposing/>`); r.StatusCode != 200 {
		t.Fatalf("bare isComposing SEND: %+v", r)
	}
	alice.Quiet(300 * time.Millisecond)
	h.events.waitKind(t, event.MessageDropped)
}

// A MESSAGE goes to the peer wrapped in CPIM when the peer lists message/cpim first, or takes its type only
// wrapped; as it is when the peer takes its type and message/cpim is not first (RFC 4975 §13, SPEC §4).
func TestOutgoingCPIMWrapping(t *testing.T) {
	cases := []struct {
		name            string
		accept, wrapped []string
		ctype           string
		wantCPIM        bool
	}{
		{"cpim first", []string{"message/cpim", "text/plain"}, []string{"text/plain"}, "text/plain", true},
		{"plain first", []string{"text/plain", "message/cpim"}, []string{"text/plain"}, "text/plain", false},
		{"wrapped only", []string{"text/plain", "message/cpim"}, []string{"text/html"}, "text/html", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, nil)
			alice := testpeer.NewPhone(t, "alice")
			bob := testpeer.NewClient(t, "bob")
			bob.SetTypes(c.accept, c.wrapped)
			alice.Send(h.udp(), bob.URI, "text/plain", "set up") // before the answer, the gateway's own types decide
			cs := bob.WaitInvite()
			cs.Recv()
			if res := alice.Send(h.udp(), bob.URI, c.ctype, "hello"); res.StatusCode != 202 {
				t.Fatalf("%s MESSAGE answered %d %s", c.ctype, res.StatusCode, res.Reason)
			}
			m := cs.Recv()
			if !c.wantCPIM {
				if m.ContentType != c.ctype || string(m.Body) != "hello" {
					t.Fatalf("SEND %s %q, want %s %q", m.ContentType, m.Body, c.ctype, "hello")
				}
				return
			}
			if m.ContentType != "message/cpim" {
				t.Fatalf("SEND is %s, want message/cpim (peer accept-types %q, accept-wrapped-types %q)", m.ContentType, c.accept, c.wrapped)
			}
			w, err := cpim.Parse(m.Body)
			if err != nil {
				t.Fatal(err)
			}
			if string(w.Body) != "hello" || !strings.HasPrefix(w.ContentType(), c.ctype) {
				t.Fatalf("CPIM wraps %s %q, want %s %q", w.ContentType(), w.Body, c.ctype, "hello")
			}
		})
	}
}

// SPEC §5 IMDN rules for CPIM the gateway unwraps: `delivered` on a 200 from the page-mode side (not a 202, and
// not with imdn.delivered_on_200 off) when positive-delivery was asked for, `failed` on a failure when
// negative-delivery was, nothing otherwise. The IMDN is sent before the REPORT the SEND asked for, on the same
// connection: once the REPORT is in, any IMDN is too.
func TestIMDNPerFinalResponse(t *testing.T) {
	pos, neg := cpim.PositiveDelivery, cpim.NegativeDelivery
	cases := []struct {
		answer      int
		disposition []string
		on200       bool
		want        string // the IMDN status ("": none)
	}{
		{200, []string{pos, neg}, true, "delivered"},
		{202, []string{pos, neg}, true, ""},
		{200, []string{pos, neg}, false, ""},
		{200, []string{neg}, true, ""},
		{404, []string{pos, neg}, true, "failed"},
		{480, []string{neg}, true, "failed"},
		{404, []string{pos}, true, ""},
	}
	for _, c := range cases {
		name := fmt.Sprintf("%d %s delivered_on_200=%v", c.answer, strings.Join(c.disposition, ","), c.on200)
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, func(cfg *config.Config) { cfg.Gateway.IMDN.DeliveredOn200 = c.on200 })
			alice := testpeer.NewPhone(t, "imdn-alice")
			alice.SetAnswer(c.answer)
			bob := testpeer.NewClient(t, "imdn-bob")
			bob.SetTypes([]string{"message/cpim"}, []string{"text/plain", "message/imdn+xml"})
			cs := bob.Call(h.udp(), alice.URI, "actpass")
			w := cpim.Wrap("text/plain", []byte("notify me"), cpim.WrapOptions{From: bob.URI, To: alice.URI, Now: time.Now(), IMDNMessageID: "imdn-7", Disposition: c.disposition})
			if r := cs.SendOut(&msrp.Outgoing{ContentType: "message/cpim", Body: w.Marshal(), SuccessReport: true}); r.StatusCode != 200 {
				t.Fatalf("SEND answered %+v", r)
			}
			alice.Recv()
			cs.Report()
			m, ok := cs.TryRecv(100 * time.Millisecond)
			if c.want == "" {
				if ok {
					t.Fatalf("unexpected SEND %s %q", m.ContentType, m.Body)
				}
				return
			}
			if !ok {
				t.Fatalf("no IMDN %s", c.want)
			}
			n, err := cpim.Parse(m.Body)
			if err != nil {
				t.Fatalf("IMDN: %v", err)
			}
			note, err := cpim.ParseNotification(n.Body)
			if err != nil || note.Status != c.want || note.MessageID != "imdn-7" {
				t.Fatalf("IMDN %+v %v, want %s for imdn-7", note, err, c.want)
			}
		})
	}
}

// A CPIM message whose encapsulated content carries a Content-Transfer-Encoding reaches the page-mode user
// decoded, labelled with its own Content-Type (a SIP MESSAGE has no transfer encoding: the phone used to get
// the base64 text itself as text/plain). An encoding the gateway cannot undo is refused with 415 and a log
// line, not delivered as undecodable text.
func TestSendCPIMTransferEncoding(t *testing.T) {
	logs := newCapturedLog()
	h := newHarnessWith(t, nil, Options{Logger: slog.New(logs)})
	alice := testpeer.NewPhone(t, "cte-alice")
	bob := testpeer.NewClient(t, "cte-bob")
	bob.SetTypes([]string{"message/cpim", "text/plain"}, []string{"text/plain"})
	cs := bob.Call(h.udp(), alice.URI, "active")
	doc := func(cte, body string) string {
		return "From: <" + bob.URI + ">\r\nTo: <" + alice.URI + ">\r\nDateTime: 2006-05-15T15:02:31-03:00\r\n\r\n" +
			"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: " + cte + "\r\n\r\n" + body
	}
	for _, tc := range []struct{ cte, body, want string }{
		{"base64", "R3LDvMOfZSBhdXMgS8O2bG4=", "Grüße aus Köln"},
		{"quoted-printable", "Gr=C3=BC=C3=9Fe aus =\r\nK=C3=B6ln", "Grüße aus Köln"},
		{"8bit", "Grüße aus Köln", "Grüße aus Köln"},
	} {
		if r := cs.Send("message/cpim", doc(tc.cte, tc.body)); r.StatusCode != 200 {
			t.Fatalf("%s: SEND answered %+v", tc.cte, r)
		}
		m := alice.Recv()
		if string(m.Body()) != tc.want || m.ContentType().Value() != "text/plain; charset=utf-8" {
			t.Errorf("%s: page-mode user got %s %q, want text/plain; charset=utf-8 %q", tc.cte, m.ContentType().Value(), m.Body(), tc.want)
		}
	}
	if r := cs.Send("message/cpim", doc("x-uuencode", "begin 644 hi.txt\r\n")); r.StatusCode != 415 {
		t.Fatalf("unknown encoding: SEND answered %+v, want 415", r)
	}
	logs.wait(t, "SEND refused: unknown Content-Transfer-Encoding in CPIM", map[string]string{
		"encoding": "x-uuencode", "key": "", "call_id": cs.CallID, "msrp_session_id": ""})
	if r := cs.Send("message/cpim", doc("base64", "R3LDvMOf!!!")); r.StatusCode != 400 {
		t.Fatalf("broken base64: SEND answered %+v, want 400", r)
	}
	alice.Quiet(200 * time.Millisecond)
}

// An RCS INVITE whose body is multipart/mixed (SDP plus the first message as message/cpim) is answered from its
// SDP part, and the first message is delivered like any SEND (SPEC §3.2 step 7), with the IMDN it asks for. The
// page-mode user answers before the peer's MSRP connection is made: the IMDN waits for it, not lost.
func TestMultipartInviteFirstMessage(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	bob.SetTypes([]string{"message/cpim", "text/plain"}, []string{"text/plain", "message/imdn+xml"})
	cs := bob.NewSession()
	first := cpim.Wrap("text/plain", []byte("first message in the INVITE"), cpim.WrapOptions{From: bob.URI, To: alice.URI, Now: time.Now(), IMDNMessageID: "imdn-first", Disposition: []string{"positive-delivery"}})
	body := "--b1\r\nContent-Type: application/sdp\r\n\r\n" + string(bob.Media(cs, sdp.SetupActive).Marshal(1, 1)) +
		"\r\n--b1\r\nContent-Type: message/cpim\r\n\r\n" + string(first.Marshal()) + "\r\n--b1--\r\n"
	cs.MSRP.SetPeerPath(inviteByHand(t, h, bob, alice.URI, "multipart/mixed;boundary=b1", []byte(body)))

	got := alice.Recv()
	if string(got.Body()) != "first message in the INVITE" || !strings.HasPrefix(got.ContentType().Value(), "text/plain") {
		t.Fatalf("page-mode user got %s %q", got.ContentType().Value(), got.Body())
	}
	if e := h.events.waitKind(t, event.MessageDelivered); e.Direction != event.ToSIP || e.Code != 200 {
		t.Fatalf("first message accounted as %s %d", e.Direction, e.Code)
	}
	time.Sleep(100 * time.Millisecond) // the 200 was handled (its IMDN made) before the MSRP connection exists
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := cs.MSRP.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	imdn, ok := cs.TryRecv(waitFor)
	if !ok {
		t.Fatal("no IMDN for the first message of the INVITE")
	}
	n, err := cpim.Parse(imdn.Body)
	if err != nil {
		t.Fatalf("IMDN: %v", err)
	}
	note, err := cpim.ParseNotification(n.Body)
	if err != nil || note.Status != "delivered" || note.MessageID != "imdn-first" {
		t.Fatalf("IMDN %+v %v", note, err)
	}
}

// With gateway.imdn.request, only chat content the gateway wraps asks for IMDNs: an IMDN never does and is
// marked Content-Disposition: notification (RFC 5438 §7.2.1.1, §9), and an isComposing does not either.
func TestIMDNRequestOnlyOnChat(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Gateway.IMDN.Request = true })
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	bob.SetTypes([]string{"message/cpim", "application/im-iscomposing+xml"}, []string{"text/plain", "message/imdn+xml"})
	sent := func(cs *testpeer.ClientSession) *cpim.Message {
		t.Helper()
		m := cs.Recv()
		c, err := cpim.Parse(m.Body)
		if err != nil || m.ContentType != "message/cpim" {
			t.Fatalf("SEND %s: %v\n%s", m.ContentType, err, m.Body)
		}
		return c
	}

	alice.Send(h.udp(), bob.URI, "text/plain", "hi")
	cs := bob.WaitInvite()
	if c := sent(cs); !c.Wants(cpim.PositiveDelivery) || !c.Wants(cpim.NegativeDelivery) || c.IsControl() {
		t.Fatalf("chat text asks for %q, want positive and negative delivery", c.DispositionNotification())
	}
	note := cpim.Notification{MessageID: "abc", DateTime: "2024-01-01T00:00:00Z", Kind: cpim.KindDelivery, Status: cpim.StatusDelivered}
	alice.Send(h.udp(), bob.URI, cpim.IMDNType, string(note.Marshal()))
	c := sent(cs)
	if d := c.DispositionNotification(); d != nil {
		t.Fatalf("the gateway asks for IMDNs on an IMDN: %q", d)
	}
	want := []cpim.Header{{Name: "Content-Type", Value: cpim.IMDNType}, {Name: "Content-Disposition", Value: "notification"}}
	if !reflect.DeepEqual(c.ContentHeaders, want) || c.IMDNMessageID() == "" {
		t.Fatalf("wrapped IMDN: content headers %q, imdn.Message-ID %q; want %q and one", c.ContentHeaders, c.IMDNMessageID(), want)
	}
	alice.Send(h.udp(), bob.URI, cpim.IsComposingType, `<?xml version="1.0"?><isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state></isComposing>`)
	if d := sent(cs).DispositionNotification(); d != nil {
		t.Fatalf("the gateway asks for IMDNs on an isComposing: %q", d)
	}
}

// A session ending with a SEND's answer on its way does not fail a message the peer took: the session ends
// once the answer is in, within byeGrace. The peer's BYE may overtake its answer (the answer on the MSRP
// connection, the BYE over SIP); an operator (EndSession, the admin API's DELETE) may end the session just
// after the peer got the message. Simulated by a peer holding its 200 for 100 ms; a failure would make the
// sender send the message again.
func TestEndWaitsForSendAnswer(t *testing.T) {
	for _, how := range []string{"bye", "admin"} {
		t.Run(how, func(t *testing.T) {
			h := newHarness(t, func(c *config.Config) { c.Gateway.Message.Reply = "wait" })
			alice := testpeer.NewPhone(t, "ov-alice")
			bob := testpeer.NewClient(t, "ov-bob")
			cs := bob.Call(h.udp(), alice.URI, "active")
			cs.SetReplyDelay(100 * time.Millisecond)
			got := make(chan int, 1)
			go func() { got <- alice.Send(h.udp(), bob.URI, "text/plain", "last words").StatusCode }()
			cs.Recv() // the SEND is in; its 200 leaves 100 ms later
			switch how {
			case "bye":
				ctx, cancel := context.WithTimeout(context.Background(), testpeer.WaitFor)
				defer cancel()
				if err := cs.ClientDialog().Bye(ctx); err != nil { // the dialog only: the MSRP side still answers
					t.Fatal(err)
				}
			case "admin":
				go h.gw.EndSession(bob.URI + ":" + alice.URI)
			}
			if code := <-got; code != 200 {
				t.Fatalf("MESSAGE the peer answered 200 as the session ended (%s): %d, want 200", how, code)
			}
			if e := h.events.waitKind(t, event.SessionEnded); e.Reason != how {
				t.Fatalf("session ended %q, want %s", e.Reason, how)
			}
			alice.Quiet(300 * time.Millisecond) // no failure notification
		})
	}
}

// An IMDN is a CPIM message wrapping message/imdn+xml (RFC 5438 §7.2.1): the gateway sends one only to a peer
// that listed both (RFC 4975 §8.6: a sender MUST NOT send a type the receiver did not list). A peer whose
// accept-wrapped-types leaves message/imdn+xml out asks for a delivery IMDN in vain, and is not sent one.
func TestIMDNOnlyToPeerThatAcceptsIt(t *testing.T) {
	cases := []struct {
		name            string
		accept, wrapped []string
		want            bool
	}{
		{"imdn wrapped", []string{"message/cpim"}, []string{"text/plain", "message/imdn+xml"}, true},
		{"imdn top level", []string{"message/cpim", "message/imdn+xml"}, []string{"text/plain"}, true},
		{"message/* wrapped", []string{"message/cpim"}, []string{"text/plain", "message/*"}, true},
		{"no imdn", []string{"message/cpim"}, []string{"text/plain"}, false},
		{"no cpim", []string{"text/plain", "message/imdn+xml"}, nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, nil)
			alice := testpeer.NewPhone(t, "alice")
			bob := testpeer.NewClient(t, "bob")
			bob.SetTypes(c.accept, c.wrapped)

			alice.Send(h.udp(), bob.URI, "text/plain", "hi")
			cs := bob.WaitInvite()
			cs.Recv()
			w := cpim.Wrap("text/plain", []byte("reply"), cpim.WrapOptions{From: bob.URI, To: alice.URI, Now: time.Now(),
				IMDNMessageID: "imdn-1", Disposition: []string{cpim.PositiveDelivery}})
			if r := cs.Send("message/cpim", string(w.Marshal())); r.StatusCode != 200 {
				t.Fatalf("CPIM SEND: %+v", r)
			}
			if got := string(alice.Recv().Body()); got != "reply" {
				t.Fatalf("page-mode user got %q", got)
			}
			m, got := cs.TryRecv(500 * time.Millisecond)
			if got != c.want {
				t.Fatalf("IMDN sent: %v, want %v (peer accept-types %q, accept-wrapped-types %q)", got, c.want, c.accept, c.wrapped)
			}
			if got {
				if m.ContentType != "message/cpim" {
					t.Fatalf("IMDN sent as %s", m.ContentType)
				}
				n, err := cpim.Parse(m.Body)
				if err != nil || n.ContentType() != cpim.IMDNType {
					t.Fatalf("IMDN %v: %q", err, m.Body)
				}
			}
		})
	}
}

// An Accept header is SIP's (RFC 3261 §20.1): MSRP's wildcard "*" (RFC 4975 §8.6) is "*/*" there, a bare "*"
// being no media-range a page-mode client can parse. So in a 415 listing the peer's types, and in the
// answer to OPTIONS listing ours.
func TestAcceptHeaderWildcard(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Gateway.Message.Reply = "wait"
		c.Gateway.Message.AcceptTypes = []string{"message/cpim", "*"}
	})
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	bob.SetTypes([]string{"*"}, nil)
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "taken"); res.StatusCode != 200 {
		t.Fatalf("first MESSAGE answered %d %s", res.StatusCode, res.Reason)
	}
	cs := bob.WaitInvite()
	cs.Recv()
	cs.SetReply(415)
	res := alice.Send(h.udp(), bob.URI, "application/x-unknown", "refused by the peer")
	if res.StatusCode != 415 {
		t.Fatalf("MESSAGE answered %d %s, want 415", res.StatusCode, res.Reason)
	}
	if a := res.GetHeader("Accept"); a == nil || a.Value() != "*/*" {
		t.Fatalf("415 with Accept %v, want */*", a)
	}

	var ruri sip.Uri
	sip.ParseUri("sip:gw@"+h.udp(), &ruri)
	opt := sip.NewRequest(sip.OPTIONS, ruri)
	opt.SetDestination(h.udp())
	res, err := doReq(alice.SIPClient(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if a := res.GetHeader("Accept"); a == nil || a.Value() != "application/sdp, message/cpim, */*" {
		t.Fatalf("OPTIONS answered with Accept %v, want application/sdp, message/cpim, */*", a)
	}
}

// A notification MESSAGE quotes the failed message, whatever its script: its body is UTF-8 (excerpt makes it
// so) and its Content-Type says it, text/plain without a charset being US-ASCII (RFC 2046 §4.1.2).
func TestFailureNotificationCharset(t *testing.T) {
	h := newHarness(t, nil) // reply: accept
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	bob.SetReply(415)
	if res := alice.Send(h.udp(), bob.URI, "text/plain;charset=UTF-8", "Grüße, ça va ? 你好"); res.StatusCode != 202 {
		t.Fatalf("got %d", res.StatusCode)
	}
	n := alice.Recv()
	if got, want := string(n.Body()), "Message not delivered (415 Unsupported Media Type): Grüße, ça va ? 你好"; got != want {
		t.Fatalf("notification %q, want %q", got, want)
	}
	ct := n.ContentType().Value()
	if mt, params, err := mime.ParseMediaType(ct); err != nil || mt != "text/plain" || !strings.EqualFold(params["charset"], "UTF-8") {
		t.Fatalf("notification %q has Content-Type %q, want text/plain;charset=UTF-8", n.Body(), ct)
	}
}

// A MESSAGE that comes after the peer's BYE, or after an operator ended the session (EndSession), while the
// gateway still waits for the answers to SENDs in flight (byeGrace), is not sent on the session that is going:
// it sets up a new session and is delivered there.
func TestMessageAfterEndMakesNewSession(t *testing.T) {
	for _, how := range []string{"bye", "admin"} {
		t.Run(how, func(t *testing.T) {
			h := newHarness(t, func(c *config.Config) { c.Gateway.Message.Reply = "wait" })
			alice := testpeer.NewPhone(t, "afterbye-alice")
			bob := testpeer.NewClient(t, "afterbye-bob")
			cs := bob.Call(h.udp(), alice.URI, "active")
			cs.SetReplyDelay(200 * time.Millisecond)
			first := make(chan int, 1)
			go func() { first <- alice.Send(h.udp(), bob.URI, "text/plain", "last words").StatusCode }()
			cs.Recv() // the SEND is in; its 200 leaves 200 ms later
			switch how {
			case "bye":
				ctx, cancel := context.WithTimeout(context.Background(), testpeer.WaitFor)
				defer cancel()
				if err := cs.ClientDialog().Bye(ctx); err != nil {
					t.Fatal(err)
				}
			case "admin":
				key := bob.URI + ":" + alice.URI
				s := h.gw.table.Get(key)
				go h.gw.EndSession(key)
				closing := func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.closing }
				for deadline := time.Now().Add(waitFor); !closing(); time.Sleep(time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatal("EndSession did not start ending the session")
					}
				}
			}
			second := make(chan int, 1)
			go func() { second <- alice.Send(h.udp(), bob.URI, "text/plain", "after the end").StatusCode }()
			cs2 := bob.WaitInvite()
			if got := string(cs2.Recv().Body); got != "after the end" {
				t.Fatalf("new session got %q, want the MESSAGE sent after the end", got)
			}
			if code := <-second; code != 200 {
				t.Fatalf("MESSAGE after the end answered %d, want 200", code)
			}
			if code := <-first; code != 200 {
				t.Fatalf("MESSAGE the peer answered as the session ended: %d, want 200", code)
			}
		})
	}
}

// The first message of an RCS INVITE comes before any SEND of its session (SPEC §3.2 step 7): the peer may
// connect and SEND as soon as it has our 200, before its ACK reaches the gateway (a lost ACK, another
// transport), and that SEND must not overtake the message the INVITE carried.
func TestMultipartInviteFirstMessageBeforeEarlySend(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	cs := bob.NewSession()
	body := "--b1\r\nContent-Type: application/sdp\r\n\r\n" + string(bob.Media(cs, sdp.SetupActive).Marshal(1, 1)) +
		"\r\n--b1\r\nContent-Type: text/plain\r\n\r\nfirst\r\n--b1--\r\n"
	req, err := testpeer.NewRequest(sip.INVITE, bob.URI, alice.URI, "multipart/mixed;boundary=b1", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	ans, dlg := inviteAnswered(t, h, bob, req)
	path, err := msrp.ParseSDPPath(strings.Join(ans.Path, " "))
	if err != nil {
		t.Fatal(err)
	}
	cs.MSRP.SetPeerPath(path)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := cs.MSRP.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if r := cs.Send("text/plain", "second"); r.StatusCode != 200 {
		t.Fatalf("SEND before the ACK answered %+v", r)
	}
	time.Sleep(300 * time.Millisecond) // the ACK comes late
	if err := dlg.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"first", "second"} {
		if got := alice.Recv(); string(got.Body()) != want {
			t.Fatalf("page-mode user got %q, want %q", got.Body(), want)
		}
	}
}

// A sender told 480 because the peer's MSRP session was gone (a SEND answered 481) may send again at once: its
// next MESSAGE sets up a new session, whatever the ending session is still doing. The 480 used to go out before
// the session was retired, and a retry arriving before the session's end got there landed on it, and failed
// 480 in turn (about one time in twenty on loopback: the loop makes it show).
func TestSend481RetryAtOnceGetsNewSession(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Gateway.Message.Reply = "wait" })
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "first"); res.StatusCode != 200 {
		t.Fatalf("first MESSAGE: %d", res.StatusCode)
	}
	cs := bob.WaitInvite()
	cs.Recv()
	for i := range 150 {
		cs.SetReply(481)
		if res := alice.Send(h.udp(), bob.URI, "text/plain", "into the void"); res.StatusCode != 480 {
			t.Fatalf("round %d: MESSAGE whose SEND got 481: %d %s, want 480", i, res.StatusCode, res.Reason)
		}
		if res := alice.Send(h.udp(), bob.URI, "text/plain", "again"); res.StatusCode != 200 {
			t.Fatalf("round %d: MESSAGE sent again at once: %d %s, want 200 on a new session", i, res.StatusCode, res.Reason)
		}
		cs = bob.WaitInvite()
		if got := string(cs.Recv().Body); got != "again" {
			t.Fatalf("round %d: new session got %q", i, got)
		}
	}
}

// A SEND answered 481 (the peer's MSRP session does not exist) fails its MESSAGE with 480 (SPEC §5) and ends
// the session (RFC 4975: the sender should), so the next MESSAGE for the key sets up a new session and is
// delivered instead of failing the same way.
func TestSend481EndsSession(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Gateway.Message.Reply = "wait" })
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "first"); res.StatusCode != 200 {
		t.Fatalf("first MESSAGE: %d", res.StatusCode)
	}
	cs := bob.WaitInvite()
	cs.Recv()
	cs.SetReply(481)
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "into the void"); res.StatusCode != 480 {
		t.Fatalf("MESSAGE whose SEND got 481: %d %s, want 480", res.StatusCode, res.Reason)
	}
	cs.WaitBye()
	if e := h.events.waitKind(t, event.SessionEnded); e.Reason != "peer_session_gone" {
		t.Fatalf("session ended: %q, want peer_session_gone", e.Reason)
	}
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "again"); res.StatusCode != 200 {
		t.Fatalf("MESSAGE after the peer's session was gone: %d %s, want 200 on a new session", res.StatusCode, res.Reason)
	}
	if got := string(bob.WaitInvite().Recv().Body); got != "again" {
		t.Fatalf("new session got %q", got)
	}
}

// A message resent with the Message-ID it had (RFC 4975 §5.4: a sender that did not learn the fate of a
// message resends it under the same Message-ID, and receivers SHOULD treat it as a duplicate) reaches the
// page-mode user once: SPEC §5 "nothing is delivered twice".
func TestResentMessageIDDeliveredOnce(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "rd-alice")
	bob := testpeer.NewClient(t, "rd-bob")
	p := newRawPeer(t, h, bob, alice.URI)
	p.write(sendFrame("dup1", p.gw, p.self, "mid-resent", "only once"))
	if m := p.response("dup1"); m.StatusCode != 200 {
		t.Fatalf("SEND: %d", m.StatusCode)
	}
	if m := alice.Recv(); string(m.Body()) != "only once" {
		t.Fatalf("page-mode user got %q", m.Body())
	}
	// The same message again, as a sender resends one whose 200 it never saw.
	p.write(sendFrame("dup2", p.gw, p.self, "mid-resent", "only once"))
	if m := p.response("dup2"); m.StatusCode != 200 {
		t.Fatalf("resent SEND: %d, want 200 (it was received)", m.StatusCode)
	}
	if m, ok := alice.TryRecv(500 * time.Millisecond); ok {
		t.Fatalf("the resent message (same Message-ID) reached the page-mode user a second time: %q", m.Body())
	}
}
