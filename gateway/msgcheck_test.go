package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/internal/testpeer"
)

// This file is the checks RFC 3261 asks of every request a UAS takes, applied to page-mode MESSAGEs (SPEC §8:
// bad input gets the right status with a Warning saying why, and a log line): each refused MESSAGE sets up
// nothing and reaches nobody.

// A MESSAGE that is malformed or asks what the gateway cannot do is refused with the status RFC 3261 gives it,
// a Warning and a "request refused" log line: a CSeq naming another method (§8.1.1.5: 400), Max-Forwards 0
// (§16.3: 483, the gateway would forward it), a To tag for a dialog the gateway does not have (§12.2.2: 481), a
// Content-Type that is no media type (400), a Content-Encoding it does not understand (§8.2.3: 415 with
// Accept-Encoding). Content-Encoding identity is no encoding at all, and the MESSAGE is taken.
func TestMessageHeaderChecks(t *testing.T) {
	logs := newCapturedLog()
	h := newHarnessWith(t, nil, Options{Logger: slog.New(logs)})
	bob := testpeer.NewClient(t, "check-bob")
	alice := newRawUDP(t)
	cases := []struct {
		name   string
		edit   func(string) string
		code   int
		header string // a header the answer must carry, "Name: value"
	}{
		{name: "CSeq names INVITE", code: 400, edit: func(s string) string {
			return strings.Replace(s, "CSeq: 1 MESSAGE", "CSeq: 1 INVITE", 1)
		}},
		{name: "Max-Forwards 0", code: 483, edit: func(s string) string {
			return strings.Replace(s, "Max-Forwards: 70", "Max-Forwards: 0", 1)
		}},
		{name: "To tag without dialog", code: 481, edit: func(s string) string {
			return strings.Replace(s, "To: <"+bob.URI+">", "To: <"+bob.URI+">;tag=nodialog", 1)
		}},
		{name: "Content-Type without subtype", code: 400, edit: func(s string) string {
			return strings.Replace(s, "Content-Type: text/plain", "Content-Type: text/", 1)
		}},
		{name: "Content-Type without slash", code: 400, edit: func(s string) string {
			return strings.Replace(s, "Content-Type: text/plain", "Content-Type: textplain", 1)
		}},
		{name: "Content-Type parameters only", code: 400, edit: func(s string) string {
			return strings.Replace(s, "Content-Type: text/plain", "Content-Type: ;charset=UTF-8", 1)
		}},
		{name: "Content-Encoding gzip", code: 415, header: "Accept-Encoding: identity", edit: func(s string) string {
			return strings.Replace(s, "Content-Type:", "Content-Encoding: gzip\nContent-Type:", 1)
		}},
		{name: "compact Content-Encoding", code: 415, header: "Accept-Encoding: identity", edit: func(s string) string {
			return strings.Replace(s, "Content-Type:", "e: identity, deflate\nContent-Type:", 1)
		}},
	}
	for i, c := range cases {
		cid := fmt.Sprintf("check-%d", i)
		raw := c.edit(message(bob.URI, alice.addr(), fmt.Sprintf("z9hG4bKcheck%d", i), "sip:check-alice@127.0.0.1",
			cid, "text/plain", "hello"))
		res := alice.exchange(h.udp(), raw)
		if res.StatusCode != c.code {
			t.Errorf("%s: answered %d %s, want %d", c.name, res.StatusCode, res.Reason, c.code)
			continue
		}
		if w := res.GetHeader("Warning"); w == nil {
			t.Errorf("%s: %d without a Warning", c.name, c.code)
		}
		if c.header != "" {
			name, value, _ := strings.Cut(c.header, ": ")
			if got := res.GetHeader(name); got == nil || got.Value() != value {
				t.Errorf("%s: %s is %v, want %q", c.name, name, got, value)
			}
		}
		logs.wait(t, "request refused", map[string]string{"code": fmt.Sprint(c.code), "call_id": cid, "why": ""})
	}
	select {
	case cs := <-bob.Invites():
		t.Fatalf("a refused MESSAGE set up a session: INVITE %s", cs.CallID)
	case <-time.After(200 * time.Millisecond):
	}

	raw := message(bob.URI, alice.addr(), "z9hG4bKcheck-identity", "sip:check-alice@127.0.0.1", "check-identity", "text/plain", "hello")
	raw = strings.Replace(raw, "Content-Type:", "Content-Encoding: identity\nContent-Type:", 1)
	if res := alice.exchange(h.udp(), raw); res.StatusCode != 202 {
		t.Fatalf("Content-Encoding identity: answered %d %s, want 202", res.StatusCode, res.Reason)
	}
	if m := bob.WaitInvite().Recv(); string(m.Body) != "hello" {
		t.Fatalf("the MESSAGE with Content-Encoding identity arrived as %q", m.Body)
	}
}

// A MESSAGE inside the INVITE dialog of an MSRP session (RFC 3428 §4 allows one in a dialog) is not chat the
// gateway carries: the session's messages go over MSRP. Taken as a page-mode MESSAGE it made a session of its
// own, the gateway INVITEing whatever its Request-URI named (its own Contact). It is refused, 403 with a Warning,
// and the session goes on.
func TestMessageInsideSessionDialogRefused(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "dlg-alice")
	bob := testpeer.NewClient(t, "dlg-bob")
	cs := bob.Call(h.udp(), alice.URI, "actpass")
	dlg := cs.ClientDialog()
	req := sip.NewRequest(sip.MESSAGE, dlg.InviteResponse.Contact().Address)
	req.AppendHeader(sip.NewHeader("Content-Type", "text/plain"))
	req.SetBody([]byte("inside the dialog"))
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	res, err := dlg.Do(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 403 || res.GetHeader("Warning") == nil {
		t.Fatalf("MESSAGE inside the dialog answered %d %s (Warning %v), want 403 with a Warning", res.StatusCode, res.Reason, res.GetHeader("Warning"))
	}
	if m, ok := alice.TryRecv(200 * time.Millisecond); ok {
		t.Fatalf("the in-dialog MESSAGE reached the phone: %q", m.Body())
	}
	if n := h.gw.table.Len(); n != 1 {
		t.Fatalf("%d sessions, want the one of the dialog", n)
	}
	if r := cs.Send("text/plain", "still up"); r.StatusCode != 200 {
		t.Fatalf("SEND after the refused MESSAGE: %+v", r)
	}
	if m := alice.Recv(); string(m.Body()) != "still up" {
		t.Fatalf("got %q", m.Body())
	}
}

// RFC 3261 §21.5.4: a client receiving a 503 with Retry-After SHOULD NOT send that server other requests for
// the duration. A generated MESSAGE answered so fails (SPEC §5: failure REPORT 408 "503 …"), and the next
// MESSAGE to that destination waits out the Retry-After instead of following at once.
func TestMessage503RetryAfterHoldsDestination(t *testing.T) {
	h := newHarness(t, nil)
	var n atomic.Int32
	alice := testpeer.NewPhoneWith(t, "ra-alice", testpeer.PhoneConfig{OnMessage: func(req *sip.Request, tx sip.ServerTransaction) bool {
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		if n.Add(1) == 1 {
			res = sip.NewResponseFromRequest(req, 503, "Service Unavailable", nil)
			res.AppendHeader(sip.NewHeader("Retry-After", "1"))
		}
		tx.Respond(res)
		return true
	}})
	bob := testpeer.NewClient(t, "ra-bob")
	cs := bob.Call(h.udp(), alice.URI, "actpass")
	if r := cs.Send("text/plain", "first"); r.StatusCode != 200 {
		t.Fatalf("SEND answered %+v", r)
	}
	alice.Recv()
	if rep := cs.Report(); rep.StatusCode != 408 || rep.Comment != "503 Service Unavailable" {
		t.Fatalf("REPORT %d %q, want 408 \"503 Service Unavailable\"", rep.StatusCode, rep.Comment)
	}
	answered := time.Now()
	if r := cs.Send("text/plain", "second"); r.StatusCode != 200 {
		t.Fatalf("SEND answered %+v", r)
	}
	if m := alice.Recv(); string(m.Body()) != "second" {
		t.Fatalf("got %q", m.Body())
	}
	if d := time.Since(answered); d < 900*time.Millisecond {
		t.Fatalf("the next MESSAGE followed the 503 with Retry-After: 1 after %s", d)
	}
}
