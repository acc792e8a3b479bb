package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/msrpgw/msrpgw/admin"
	"github.com/msrpgw/msrpgw/internal/testpeer"
	"github.com/msrpgw/msrpgw/msrp/sdp"
)

// upSession sets up a MESSAGE-first session from phone to client through the daemon and returns its key and
// the client's side of it. The first message is "hello".
func upSession(t *testing.T, d *daemon, phone *testpeer.Phone, client *testpeer.Client) (string, *testpeer.ClientSession) {
	t.Helper()
	if res := phone.Send(d.sipUDP, client.URI, "text/plain", "hello"); res.StatusCode != 200 {
		t.Fatalf("first MESSAGE answered %d %s, want 200 (wait mode, delivered)", res.StatusCode, res.Reason)
	}
	cs := client.WaitInvite()
	if m := cs.Recv(); string(m.Body) != "hello" {
		t.Fatalf("client got %q, want hello", m.Body)
	}
	// The default message key is $tu:$fu.
	return client.URI + ":" + phone.URI, cs
}

func TestHealthAndReadiness(t *testing.T) {
	d := startDaemon(t, daemonOpts{})
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready"} {
		code, body := d.do("GET", path, "")
		if code != 200 || strings.TrimSpace(string(body)) != want {
			t.Errorf("GET %s = %d %q, want 200 %q", path, code, body, want)
		}
	}
	if list := d.sessions(); len(list) != 0 {
		t.Errorf("sessions at start: %+v", list)
	}
	for _, path := range []string{"/nope", "/api/nope"} {
		if code, _ := d.do("GET", path, ""); code != 404 {
			t.Errorf("GET %s = %d, want 404", path, code)
		}
	}
	d.stop()
}

func TestSessionsAPI(t *testing.T) {
	d := startDaemon(t, daemonOpts{})
	phone, client := testpeer.NewPhone(t, "alice"), testpeer.NewClient(t, "bob")
	key, cs := upSession(t, d, phone, client)

	// A session-first one too, from another client to another phone.
	phone2, client2 := testpeer.NewPhone(t, "carol"), testpeer.NewClient(t, "dave")
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	cs2, err := client2.Invite(ctx, d.sipUDP, phone2.URI, sdp.SetupActPass)
	if err != nil {
		t.Fatal(err)
	}
	if r := cs2.Send("text/plain", "hi carol"); r.StatusCode != 200 {
		t.Fatalf("SEND = %+v", r)
	}
	if m := phone2.Recv(); string(m.Body()) != "hi carol" {
		t.Fatalf("phone2 got %q", m.Body())
	}
	key2 := client2.URI + ":" + phone2.URI // the default answer key is $fu:$tu

	list := d.waitSessions("two up", func(l []admin.Session) bool {
		return len(l) == 2 && l[0].State == admin.StateUp && l[1].State == admin.StateUp
	})
	byKey := map[string]admin.Session{}
	for _, s := range list {
		byKey[s.Key] = s
	}
	s, ok := byKey[key]
	if !ok || s.Origin != "message" || s.MsgSideFrom != client.URI || s.MsgSideTo != phone.URI || s.MsgSideRURI != phone.URI ||
		s.MSRPSessionID == "" || !strings.HasPrefix(s.MSRPPeerPath, "msrp://127.0.0.1:") || s.CallID != cs.CallID ||
		s.Created.IsZero() || s.LastMessage.IsZero() || s.MessagesToMSRP != 1 || s.MessagesToSIP != 0 {
		t.Errorf("MESSAGE-first session %q: %+v", key, s)
	}
	s2, ok := byKey[key2]
	if !ok || s2.Origin != "invite" || s2.MsgSideFrom != client2.URI || s2.MsgSideTo != phone2.URI || s2.MsgSideRURI != phone2.URI ||
		s2.CallID != cs2.CallID || s2.LastSend.IsZero() || s2.MessagesToSIP != 1 {
		t.Errorf("INVITE-first session %q: %+v", key2, s2)
	}
	// What never happened is the zero time (admin/README.md), not the session's creation: phone2 sent no
	// MESSAGE, and bob's client no SEND.
	if !s2.LastMessage.IsZero() {
		t.Errorf("INVITE-first session without a MESSAGE: last_message %v, want the zero time", s2.LastMessage)
	}
	if !s.LastSend.IsZero() {
		t.Errorf("MESSAGE-first session without a SEND: last_send %v, want the zero time", s.LastSend)
	}

	// One session by key: path-escaped, and with ':' and '@' raw (both are legal in a path segment).
	for _, path := range []string{sessionPath(key), "/api/sessions/" + key} {
		code, body := d.do("GET", path, "")
		var got admin.Session
		if code != 200 || json.Unmarshal(body, &got) != nil || got.Key != key || got.MSRPSessionID != s.MSRPSessionID {
			t.Errorf("GET %s = %d %s", path, code, body)
		}
	}
	if code, _ := d.do("GET", sessionPath("sip:nobody@127.0.0.1:sip:x@127.0.0.1"), ""); code != 404 {
		t.Errorf("GET unknown session = %d, want 404", code)
	}

	// DELETE ends it with BYE to the MSRP client.
	code, body := d.do("DELETE", sessionPath(key), "")
	var ended struct {
		Key   string `json:"key"`
		Ended bool   `json:"ended"`
	}
	if code != 200 || json.Unmarshal(body, &ended) != nil || !ended.Ended || ended.Key != key {
		t.Errorf("DELETE = %d %s", code, body)
	}
	cs.WaitBye()
	d.waitSessions("without the ended one", func(l []admin.Session) bool { return len(l) == 1 && l[0].Key == key2 })
	if code, _ := d.do("GET", sessionPath(key), ""); code != 404 {
		t.Errorf("GET ended session = %d, want 404", code)
	}
	if code, _ := d.do("DELETE", sessionPath(key), ""); code != 404 {
		t.Errorf("DELETE ended session = %d, want 404", code)
	}
	if cs2.GotBye() {
		t.Error("the other session got BYE too")
	}
	d.stop()
	d.checkShutdownByes(cs2) // shutdown ends every session with BYE
}

func TestMI(t *testing.T) {
	d := startDaemon(t, daemonOpts{})
	phone := testpeer.NewPhone(t, "alice")
	client := testpeer.NewClient(t, "bob")
	key, cs := upSession(t, d, phone, client)
	msrpID := d.sessions()[0].MSRPSessionID

	for _, method := range []string{"msrp_gateway:list_sessions", "msrp_gw_list_sessions"} {
		for _, params := range []string{``, `"params": [], `} {
			r := d.mi(`{"jsonrpc": "2.0", "method": "` + method + `", ` + params + `"id": "1"}`)
			var got []map[string]any
			if r.Error != nil || json.Unmarshal(r.Result, &got) != nil || string(r.ID) != `"1"` {
				t.Fatalf("%s: %+v %s", method, r, r.Result)
			}
			want := map[string]any{"key": key, "msg_side_to": phone.URI, "msrp_ua_session_id": msrpID, "msg_side_ruri": phone.URI}
			if len(got) != 1 {
				t.Fatalf("%s: %d sessions, want 1: %s", method, len(got), r.Result)
			}
			for k, v := range want {
				if got[0][k] != v {
					t.Errorf("%s: %s = %v, want %v", method, k, got[0][k], v)
				}
			}
		}
	}

	// end_session, named params.
	r := d.mi(`{"jsonrpc": "2.0", "method": "msrp_gateway:end_session", "params": {"key": "` + key + `"}, "id": 2}`)
	if r.Error != nil || string(r.Result) != `"OK"` || string(r.ID) != "2" {
		t.Fatalf("end_session named: %+v %s", r, r.Result)
	}
	cs.WaitBye()

	// A new session for the same pair, ended with the 3.3 name and positional params.
	key2, cs2 := upSession(t, d, phone, client)
	if key2 != key {
		t.Fatalf("key %q then %q", key, key2)
	}
	r = d.mi(`{"jsonrpc": "2.0", "method": "msrp_gw_end_session", "params": ["` + key + `"], "id": "3"}`)
	if r.Error != nil || string(r.Result) != `"OK"` {
		t.Fatalf("msrp_gw_end_session positional: %+v %s", r, r.Result)
	}
	cs2.WaitBye()

	for _, tc := range []struct {
		req  string
		code int
		msg  string
	}{
		{`{"jsonrpc": "2.0", "method": "msrp_gateway:end_session", "params": {"key": "sip:nobody@127.0.0.1:sip:x@127.0.0.1"}, "id": 4}`, 404, "Session doesn't exist"},
		{`{"jsonrpc": "2.0", "method": "msrp_gw_end_session", "params": ["sip:nobody@127.0.0.1:sip:x@127.0.0.1"], "id": 5}`, 404, "Session doesn't exist"},
		{`{"jsonrpc": "2.0", "method": "ps", "id": 6}`, -32601, ""},
		{`{"jsonrpc": "2.0", "method": "msrp_gateway:end_session", "params": [], "id": 7}`, -32602, ""},
	} {
		r := d.mi(tc.req)
		if r.Error == nil || r.Error.Code != tc.code || (tc.msg != "" && r.Error.Message != tc.msg) {
			t.Errorf("%s: %+v, want error %d %q", tc.req, r.Error, tc.code, tc.msg)
		}
	}
	d.stop()
}
