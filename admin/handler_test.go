package admin

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// do sends one request and returns status and body.
func do(t *testing.T, method, rawURL, token string, body string) (int, http.Header, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, rawURL, r)
	if err != nil {
		t.Fatalf("NewRequest %s %s: %v", method, rawURL, err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s %s: %v", method, rawURL, err)
	}
	return resp.StatusCode, resp.Header, b
}

func TestListSessions(t *testing.T) {
	gw := newFakeGateway(liveSessions()...)
	srv := newTestServer(t, gw, nil, Options{})
	status, hdr, body := do(t, "GET", srv.URL+"/api/sessions", "", "")
	if status != 200 {
		t.Fatalf("status %d, body %s", status, body)
	}
	if ct := hdr.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var got []Session
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("body is not a session array: %v\n%s", err, body)
	}
	want := liveSessions() // already oldest first
	if len(got) != len(want) {
		t.Fatalf("got %d sessions, want %d", len(got), len(want))
	}
	for i := range want {
		if !sessionEqual(got[i], want[i]) {
			t.Errorf("session %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	// The JSON field names are the contract.
	var raw []map[string]any
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"key", "state", "origin", "msg_side_from", "msg_side_to", "msg_side_ruri", "msrp_session_id",
		"msrp_peer_path", "call_id", "created", "last_message", "last_send", "queued", "messages_to_msrp", "messages_to_sip"} {
		if _, ok := raw[0][f]; !ok {
			t.Errorf("field %q missing from %v", f, raw[0])
		}
	}
}

func sessionEqual(a, b Session) bool {
	return a.Key == b.Key && a.State == b.State && a.Origin == b.Origin && a.MsgSideFrom == b.MsgSideFrom &&
		a.MsgSideTo == b.MsgSideTo && a.MsgSideRURI == b.MsgSideRURI && a.MSRPSessionID == b.MSRPSessionID &&
		a.MSRPPeerPath == b.MSRPPeerPath && a.CallID == b.CallID && a.Created.Equal(b.Created) &&
		a.LastMessage.Equal(b.LastMessage) && a.LastSend.Equal(b.LastSend) && a.Queued == b.Queued &&
		a.MessagesToMSRP == b.MessagesToMSRP && a.MessagesToSIP == b.MessagesToSIP
}

// Keys that path cleaning would turn into directories still reach their session through SessionPath and the
// client.
func TestDotKeys(t *testing.T) {
	for _, key := range []string{".", "..", "a/../b"} {
		gw := newFakeGateway(Session{Key: key, State: "up"})
		srv := newTestServer(t, gw, nil, Options{})
		if status, _, body := do(t, "GET", srv.URL+SessionPath(key), "", ""); status != 200 {
			t.Errorf("GET %s: status %d body %s", SessionPath(key), status, body)
		}
		c := &Client{BaseURL: srv.URL, HTTP: srv.Client()}
		if s, err := c.Show(t.Context(), key); err != nil || s.Key != key {
			t.Errorf("Show(%q): %+v, %v", key, s, err)
		}
	}
}

func TestListSessionsEmptyIsArray(t *testing.T) {
	srv := newTestServer(t, newFakeGateway(), nil, Options{})
	status, _, body := do(t, "GET", srv.URL+"/api/sessions", "", "")
	if status != 200 || strings.TrimSpace(string(body)) != "[]" {
		t.Fatalf("status %d body %q, want 200 []", status, body)
	}
}

func TestShowAndEndSessionEscapedKeys(t *testing.T) {
	for _, s := range liveSessions() {
		t.Run(s.Key, func(t *testing.T) {
			gw := newFakeGateway(liveSessions()...)
			srv := newTestServer(t, gw, nil, Options{})
			u := srv.URL + "/api/sessions/" + url.PathEscape(s.Key)

			status, _, body := do(t, "GET", u, "", "")
			if status != 200 {
				t.Fatalf("GET %s: status %d body %s", u, status, body)
			}
			var got Session
			if err := json.Unmarshal(body, &got); err != nil || !sessionEqual(got, s) {
				t.Fatalf("GET %s: got %+v (%v), want %+v", u, got, err, s)
			}

			status, _, body = do(t, "DELETE", u, "", "")
			if status != 200 {
				t.Fatalf("DELETE %s: status %d body %s", u, status, body)
			}
			if e := gw.endedKeys(); len(e) != 1 || e[0] != s.Key {
				t.Fatalf("gateway ended %q, want [%q]", e, s.Key)
			}
			// Gone now: both verbs answer 404 with a JSON error.
			for _, m := range []string{"GET", "DELETE"} {
				status, _, body = do(t, m, u, "", "")
				var ae apiError
				if status != 404 || json.Unmarshal(body, &ae) != nil || !strings.Contains(ae.Error, s.Key) {
					t.Errorf("%s after end: status %d body %s, want 404 naming the key", m, status, body)
				}
			}
		})
	}
}

func TestKeyEscapingVariants(t *testing.T) {
	gw := newFakeGateway(liveSessions()...)
	srv := newTestServer(t, gw, nil, Options{})
	cases := []struct {
		name, path string
		want       int
	}{
		{"fully escaped", "/api/sessions/" + url.QueryEscape(keyAlice), 200}, // ':' '@' as %3A %40
		{"raw colon and at", "/api/sessions/" + keyAlice, 200},               // unescaped ':' '@' are legal in a path
		{"escaped slash", "/api/sessions/sip:eve@c.example.com:tel:+1%2F555%2F0100", 200},
		{"unescaped slash still found", "/api/sessions/sip:eve@c.example.com:tel:+1/555/0100", 200},
		{"escaped semicolon", "/api/sessions/" + url.PathEscape(keyCarol), 200},
		{"unknown key", "/api/sessions/" + url.PathEscape("sip:nobody@x:sip:y@z"), 404},
		{"empty key", "/api/sessions/", 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, _, body := do(t, "GET", srv.URL+c.path, "", "")
			if status != c.want {
				t.Fatalf("GET %s: status %d, want %d; body %s", c.path, status, c.want, body)
			}
		})
	}
}

func TestHealthReadyDrain(t *testing.T) {
	gw := newFakeGateway()
	srv := newTestServer(t, gw, nil, Options{})
	if status, _, body := do(t, "GET", srv.URL+"/healthz", "", ""); status != 200 {
		t.Fatalf("healthz %d %s", status, body)
	}
	if status, _, body := do(t, "GET", srv.URL+"/readyz", "", ""); status != 200 {
		t.Fatalf("readyz while ready: %d %s", status, body)
	}
	status, _, body := do(t, "POST", srv.URL+"/api/drain", "", "")
	if status != http.StatusAccepted {
		t.Fatalf("drain: %d %s", status, body)
	}
	if gw.drainCount() != 1 {
		t.Fatalf("gateway saw %d drains, want 1", gw.drainCount())
	}
	if status, _, body := do(t, "GET", srv.URL+"/readyz", "", ""); status != 503 {
		t.Fatalf("readyz while draining: %d %s, want 503", status, body)
	}
	if status, _, _ := do(t, "GET", srv.URL+"/healthz", "", ""); status != 200 {
		t.Fatalf("healthz while draining: %d, want 200 (process is still up)", status)
	}
	// Drain is a POST only: a stray GET must not start one.
	if status, _, _ := do(t, "GET", srv.URL+"/api/drain", "", ""); status != http.StatusMethodNotAllowed {
		t.Errorf("GET /api/drain: %d, want 405", status)
	}
}

func TestToken(t *testing.T) {
	const tok = "s3cret"
	gw := newFakeGateway(liveSessions()...)
	m := NewMetrics(gw.Stats)
	srv := newTestServer(t, gw, m, Options{Token: tok, Pprof: true})
	endpoints := []struct {
		method, path, body string
		ok                 int
	}{
		{"GET", "/api/sessions", "", 200},
		{"GET", "/api/sessions/" + url.PathEscape(keyAlice), "", 200},
		{"GET", "/readyz", "", 200},
		{"GET", "/metrics", "", 200},
		{"POST", "/mi", `{"jsonrpc":"2.0","method":"msrp_gateway:list_sessions","id":1}`, 200},
		{"GET", "/debug/pprof/", "", 200},
		{"DELETE", "/api/sessions/" + url.PathEscape(keyCarol), "", 200},
		{"POST", "/api/drain", "", 202},
	}
	for _, e := range endpoints {
		t.Run(e.method+" "+e.path, func(t *testing.T) {
			for _, bad := range []string{"", "wrong", tok + "x"} {
				status, hdr, body := do(t, e.method, srv.URL+e.path, bad, e.body)
				if status != 401 {
					t.Errorf("token %q: status %d, want 401; body %s", bad, status, body)
				}
				if !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("token %q: WWW-Authenticate %q", bad, hdr.Get("WWW-Authenticate"))
				}
			}
			if status, _, body := do(t, e.method, srv.URL+e.path, tok, e.body); status != e.ok {
				t.Errorf("right token: status %d, want %d; body %.200s", status, e.ok, body)
			}
		})
	}
	if n := len(gw.endedKeys()); n != 1 {
		t.Errorf("unauthorized DELETEs reached the gateway: %d sessions ended, want 1", n)
	}
	if gw.drainCount() != 1 {
		t.Errorf("unauthorized drains reached the gateway: %d, want 1", gw.drainCount())
	}
	// /healthz never needs the token: probes must work without credentials.
	if status, _, _ := do(t, "GET", srv.URL+"/healthz", "", ""); status != 200 {
		t.Errorf("healthz without token: %d, want 200", status)
	}
}

func TestNoTokenNoPprof(t *testing.T) {
	srv := newTestServer(t, newFakeGateway(), nil, Options{})
	if status, _, _ := do(t, "GET", srv.URL+"/api/sessions", "", ""); status != 200 {
		t.Errorf("without a configured token the API is open: got %d", status)
	}
	if status, _, _ := do(t, "GET", srv.URL+"/debug/pprof/", "", ""); status != 404 {
		t.Errorf("pprof not enabled: got %d, want 404", status)
	}
	if status, _, _ := do(t, "GET", srv.URL+"/metrics", "", ""); status != 404 {
		t.Errorf("no metrics given: got %d, want 404", status)
	}
}

// A token config accepts (admin.token may have any character but controls, and no space or tab at its ends,
// which HTTP drops) is one a request can present: the Authorization header's value is compared as HTTP
// delivers it, its optional whitespace (space, tab) alone dropped. A token ending in a no-break space (pasted
// from a document, say) was refused whatever a client sent.
func TestTokenEndingInNonASCIISpace(t *testing.T) {
	for _, tok := range []string{"s3cret\u00a0", "\u3000s3cret", "s3\u00a0cret"} {
		gw := newFakeGateway(liveSessions()...)
		srv := newTestServer(t, gw, NewMetrics(gw.Stats), Options{Token: tok})
		if status, _, body := do(t, "GET", srv.URL+"/api/sessions", tok, ""); status != 200 {
			t.Errorf("token %q: status %d, want 200; body %.200s", tok, status, body)
		}
		if status, _, _ := do(t, "GET", srv.URL+"/api/sessions", "s3cret", ""); status != 401 {
			t.Errorf("token %q presented as %q: status %d, want 401", tok, "s3cret", status)
		}
	}
}

// The collection /api/sessions serves GET (and HEAD) only, but a 405 on it advertises "Allow: DELETE, GET, HEAD",
// and DELETE /api/sessions itself is not answered 405 but redirected (307) to /api/sessions/, where it gets 400.
// RFC 9110 §15.5.6: a 405 "MUST generate an Allow header field ... containing a list of the target resource's
// currently supported methods"; DELETE is not one of this resource's.
func TestSessionsCollectionAllow(t *testing.T) {
	srv := newTestServer(t, newFakeGateway(liveSessions()...), nil, Options{})
	_, hdr, _ := do(t, "PUT", srv.URL+"/api/sessions", "", "")
	if allow := hdr.Get("Allow"); strings.Contains(allow, "DELETE") {
		t.Errorf("PUT /api/sessions: Allow %q advertises DELETE on the collection", allow)
	}
	resp, body := rawRequest(t, srv, "DELETE /api/sessions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("DELETE /api/sessions: %s (Location %q) %q; want 405 with Allow: GET, HEAD",
			resp.Status, resp.Header.Get("Location"), strings.TrimSpace(string(body)))
	}
}
