package gateway

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/msrpgw/msrpgw/cpim"
	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/internal/testpeer"
)

// SPEC §7: one log line per failure, with the key, Call-ID and MSRP session-id. These tests read the
// gateway's log through a handler that keeps it.

// logLine is one logged record: its message and attributes (the logger's own included) as text.
type logLine struct {
	msg   string
	attrs map[string]string
}

// capturedLog is a slog.Handler that keeps the lines at Info and above.
type capturedLog struct {
	mu    *sync.Mutex
	lines *[]logLine
	attrs []slog.Attr
}

func newCapturedLog() capturedLog { return capturedLog{mu: new(sync.Mutex), lines: new([]logLine)} }

func (c capturedLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (c capturedLog) Handle(_ context.Context, r slog.Record) error {
	l := logLine{msg: r.Message, attrs: make(map[string]string)}
	for _, a := range c.attrs {
		l.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		l.attrs[a.Key] = a.Value.String()
		return true
	})
	c.mu.Lock()
	*c.lines = append(*c.lines, l)
	c.mu.Unlock()
	return nil
}

func (c capturedLog) WithAttrs(as []slog.Attr) slog.Handler {
	c.attrs = append(c.attrs[:len(c.attrs):len(c.attrs)], as...)
	return c
}

func (c capturedLog) WithGroup(string) slog.Handler { return c } // the gateway logs no groups

// wait returns the first line with message msg whose attributes include want, waiting up to waitFor.
func (c capturedLog) wait(t *testing.T, msg string, want map[string]string) logLine {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		c.mu.Lock()
		for _, l := range *c.lines {
			if l.msg == msg && hasAttrs(l, want) {
				c.mu.Unlock()
				return l
			}
		}
		c.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no log line %q with %v within %s", msg, want, waitFor)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func hasAttrs(l logLine, want map[string]string) bool {
	for k, v := range want {
		if got, ok := l.attrs[k]; !ok || (v != "" && got != v) {
			return false
		}
	}
	return true
}

// A MESSAGE of a type the session does not take gets 415, and a log line saying so with its key and Call-ID.
func TestMessage415Logged(t *testing.T) {
	logs := newCapturedLog()
	h := newHarnessWith(t, nil, Options{Logger: slog.New(logs)})
	bob := testpeer.NewClient(t, "log415-bob")
	peer := newRawUDP(t)
	raw := message(bob.URI, peer.addr(), "z9hG4bKlog415", "sip:log415-alice@127.0.0.1", "log415-1", "application/x-foo", "hi")
	if res := peer.exchange(h.udp(), raw); res.StatusCode != 415 {
		t.Fatalf("answered %d %s, want 415", res.StatusCode, res.Reason)
	}
	l := logs.wait(t, "MESSAGE refused by its session", map[string]string{"code": "415", "call_id": "log415-1", "key": ""})
	if l.attrs["key"] == "" || l.attrs["content_type"] != "application/x-foo" {
		t.Fatalf("log line %v: want the key and the content type", l.attrs)
	}
}

// A setup failed by the INVITE's own final response is logged with that code and reason, and no err (there is
// nothing more to say: "err=<nil>" on every busy callee was noise); one the gateway failed says why in err
// (TestAnswerPathWithoutPortFailsSetup).
func TestSetupFailedLogged(t *testing.T) {
	logs := newCapturedLog()
	h := newHarnessWith(t, nil, Options{Logger: slog.New(logs)})
	alice := testpeer.NewPhone(t, "logbusy-alice")
	bob := testpeer.NewClient(t, "logbusy-bob")
	bob.SetAnswer(486, "")
	alice.Send(h.udp(), bob.URI, "text/plain", "hi")
	l := logs.wait(t, "session setup failed", map[string]string{"code": "486", "reason": "Busy Here"})
	if err, ok := l.attrs["err"]; ok {
		t.Fatalf("log line %v: err %q for a setup its INVITE's 486 failed", l.attrs, err)
	}
}

// A SEND whose CPIM wraps a type the page-mode side is not configured for gets 415, and a log line; so does
// one of such a type at top level (SPEC §4).
func TestSendWrapped415Logged(t *testing.T) {
	logs := newCapturedLog()
	h := newHarnessWith(t, nil, Options{Logger: slog.New(logs)})
	alice := testpeer.NewPhone(t, "logcpim-alice")
	bob := testpeer.NewClient(t, "logcpim-bob")
	bob.SetTypes([]string{"message/cpim", "text/plain"}, []string{"text/plain"})
	cs := bob.Call(h.udp(), alice.URI, "active")
	c := cpim.Wrap("application/x-foo", []byte("hi"), cpim.WrapOptions{From: bob.URI, To: alice.URI})
	if r := cs.Send("message/cpim", string(c.Marshal())); r.StatusCode != 415 {
		t.Fatalf("SEND answered %+v, want 415", r)
	}
	logs.wait(t, "SEND refused: wrapped content type not offered", map[string]string{
		"content_type": "application/x-foo", "key": "", "call_id": cs.CallID, "msrp_session_id": ""})
	if r := cs.Send("application/x-foo", "hi"); r.StatusCode != 415 {
		t.Fatalf("SEND of an unconfigured type answered %+v, want 415", r)
	}
	logs.wait(t, "SEND refused: content type not offered", map[string]string{
		"content_type": "application/x-foo", "call_id": cs.CallID})
	if n := alice.Received(); n != 0 {
		t.Fatalf("alice got %d MESSAGEs, want none", n)
	}
}

// A notification MESSAGE the page-mode user refuses is a failure too: its sender never learns that its message
// failed, and the operator learns it from this line (and the message_dropped count) alone.
func TestNotificationFailureLogged(t *testing.T) {
	logs := newCapturedLog()
	h := newHarnessWith(t, nil, Options{Logger: slog.New(logs)})
	alice := testpeer.NewPhone(t, "lognf-alice")
	alice.SetAnswer(480) // refuses every MESSAGE, the setup-failed notification included
	bob := testpeer.NewClient(t, "lognf-bob")
	bob.SetAnswer(486, "")
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "hello"); res.StatusCode != 202 {
		t.Fatalf("MESSAGE answered %d, want 202", res.StatusCode)
	}
	key := bob.URI + ":" + alice.URI
	logs.wait(t, "notification failed", map[string]string{"key": key, "to": alice.URI, "code": "480"})
	for {
		e := h.events.waitKind(t, event.MessageDropped)
		if e.Key == key && e.Direction == event.ToSIP && e.Reason == "notification failed" {
			break
		}
	}
}

// SPEC §7 "Logs: ... one line per session event and per failure, with key, Call-ID and MSRP session-id": a
// message from the session-mode side that the page-mode user refuses is a failure, logged as "message to SIP
// failed" with the key and the MSRP session-id but without any Call-ID (the line of the other direction,
// "message to MSRP failed", has one).
func TestMessageToSIPFailedLogHasCallID(t *testing.T) {
	logs := newCapturedLog()
	h := newHarnessWith(t, nil, Options{Logger: slog.New(logs)})
	alice := testpeer.NewPhone(t, "rvlog-alice")
	alice.SetAnswer(486)
	bob := testpeer.NewClient(t, "rvlog-bob")
	cs := bob.Call(h.udp(), alice.URI, "active")
	if r := cs.Send("text/plain", "hi"); r.StatusCode != 200 {
		t.Fatalf("SEND answered %+v, want 200", r)
	}
	l := logs.wait(t, "message to SIP failed", map[string]string{"code": "486", "key": "", "msrp_session_id": ""})
	if got, ok := l.attrs["call_id"]; !ok || got == "" {
		t.Fatalf("\"message to SIP failed\" logged with %v: no call_id (the session's is %s)", l.attrs, cs.CallID)
	}
}
