package admin

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// miCall posts body to /mi and decodes the JSON-RPC answer into a generic map, so ids keep their JSON type.
func miCall(t *testing.T, srvURL, body string) (int, map[string]json.RawMessage) {
	t.Helper()
	status, _, b := do(t, "POST", srvURL+"/mi", "", body)
	if status == http.StatusNoContent {
		return status, nil
	}
	var resp map[string]json.RawMessage
	if err := json.Unmarshal(b, &resp); err != nil {
		t.Fatalf("answer to %s is not JSON: %v\n%s", body, err, b)
	}
	if string(resp["jsonrpc"]) != `"2.0"` {
		t.Errorf("answer to %s: jsonrpc %s, want \"2.0\"", body, resp["jsonrpc"])
	}
	return status, resp
}

func errorCode(t *testing.T, resp map[string]json.RawMessage) (int, string) {
	t.Helper()
	var e rpcError
	if resp["error"] == nil {
		return 0, ""
	}
	if err := json.Unmarshal(resp["error"], &e); err != nil {
		t.Fatalf("error member %s: %v", resp["error"], err)
	}
	return e.Code, e.Message
}

func TestMIListSessions(t *testing.T) {
	gw := newFakeGateway(liveSessions()...)
	srv := newTestServer(t, gw, nil, Options{})
	for _, method := range []string{"msrp_gateway:list_sessions", "msrp_gw_list_sessions"} {
		for _, params := range []string{``, `,"params":[]`, `,"params":{}`, `,"params":null`} {
			body := `{"jsonrpc": "2.0", "method": "` + method + `"` + params + `, "id": "1"}`
			t.Run(body, func(t *testing.T) {
				status, resp := miCall(t, srv.URL, body)
				if status != 200 || resp["error"] != nil {
					t.Fatalf("status %d error %s", status, resp["error"])
				}
				if string(resp["id"]) != `"1"` {
					t.Errorf("id %s, want \"1\" (a string, as sent)", resp["id"])
				}
				var got []map[string]string
				if err := json.Unmarshal(resp["result"], &got); err != nil {
					t.Fatalf("result %s: %v", resp["result"], err)
				}
				var want []map[string]string
				for _, s := range liveSessions() {
					want = append(want, map[string]string{"key": s.Key, "msg_side_to": s.MsgSideTo,
						"msrp_ua_session_id": s.MSRPSessionID, "msg_side_ruri": s.MsgSideRURI})
				}
				byKey := func(a, b map[string]string) int { return strings.Compare(a["key"], b["key"]) }
				slices.SortFunc(got, byKey)
				slices.SortFunc(want, byKey)
				if len(got) != len(want) {
					t.Fatalf("got %d entries, want %d: %s", len(got), len(want), resp["result"])
				}
				for i := range want {
					if len(got[i]) != 4 || got[i]["key"] != want[i]["key"] || got[i]["msg_side_to"] != want[i]["msg_side_to"] ||
						got[i]["msrp_ua_session_id"] != want[i]["msrp_ua_session_id"] || got[i]["msg_side_ruri"] != want[i]["msg_side_ruri"] {
						t.Errorf("entry %d: got %v, want %v", i, got[i], want[i])
					}
				}
			})
		}
	}
}

func TestMIListEmptyIsArray(t *testing.T) {
	srv := newTestServer(t, newFakeGateway(), nil, Options{})
	_, resp := miCall(t, srv.URL, `{"jsonrpc":"2.0","method":"msrp_gateway:list_sessions","id":7}`)
	if string(resp["result"]) != "[]" || string(resp["id"]) != "7" {
		t.Fatalf("result %s id %s, want [] and 7", resp["result"], resp["id"])
	}
}

func TestMIEndSession(t *testing.T) {
	cases := []struct {
		name   string
		method string
		params string
	}{
		{"named", "msrp_gateway:end_session", `{"key": "` + keyAlice + `"}`},
		{"positional", "msrp_gateway:end_session", `["` + keyAlice + `"]`},
		{"3.3 name named", "msrp_gw_end_session", `{"key": "` + keyAlice + `"}`},
		{"3.3 name positional", "msrp_gw_end_session", `["` + keyAlice + `"]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			gw := newFakeGateway(liveSessions()...)
			srv := newTestServer(t, gw, nil, Options{})
			body := `{"jsonrpc":"2.0","method":"` + c.method + `","params":` + c.params + `,"id":"42"}`
			status, resp := miCall(t, srv.URL, body)
			if status != 200 || string(resp["result"]) != `"OK"` || resp["error"] != nil {
				t.Fatalf("status %d result %s error %s, want result \"OK\"", status, resp["result"], resp["error"])
			}
			if e := gw.endedKeys(); len(e) != 1 || e[0] != keyAlice {
				t.Fatalf("gateway ended %q", e)
			}
			// A second time the session is gone: the reference's 404.
			_, resp = miCall(t, srv.URL, body)
			code, msg := errorCode(t, resp)
			if code != 404 || msg != "Session doesn't exist" || resp["result"] != nil {
				t.Fatalf("second end: error %d %q result %s, want 404 \"Session doesn't exist\"", code, msg, resp["result"])
			}
			if string(resp["id"]) != `"42"` {
				t.Errorf("error id %s, want \"42\"", resp["id"])
			}
		})
	}
}

func TestMIErrors(t *testing.T) {
	cases := []struct {
		name, body string
		code       int
		id         string
	}{
		{"unknown method", `{"jsonrpc":"2.0","method":"dlg_list","id":"1"}`, rpcMethodNotFound, `"1"`},
		{"bad JSON", `{"jsonrpc":"2.0","method":`, rpcParseError, `null`},
		{"not JSON at all", `list_sessions please`, rpcParseError, `null`},
		{"array (batch)", `[{"jsonrpc":"2.0","method":"msrp_gw_list_sessions","id":1}]`, rpcInvalidRequest, `null`},
		{"string", `"msrp_gw_list_sessions"`, rpcInvalidRequest, `null`},
		{"no jsonrpc", `{"method":"msrp_gw_list_sessions","id":3}`, rpcInvalidRequest, `3`},
		{"jsonrpc 1.0", `{"jsonrpc":"1.0","method":"msrp_gw_list_sessions","id":3}`, rpcInvalidRequest, `3`},
		{"method not a string", `{"jsonrpc":"2.0","method":5,"id":3}`, rpcInvalidRequest, `3`},
		{"no method", `{"jsonrpc":"2.0","id":3}`, rpcInvalidRequest, `3`},
		{"id an object", `{"jsonrpc":"2.0","method":"msrp_gw_list_sessions","id":{"a":1}}`, rpcInvalidRequest, `null`},
		{"params a scalar", `{"jsonrpc":"2.0","method":"msrp_gw_list_sessions","params":"x","id":3}`, rpcInvalidRequest, `3`},
		{"end without params", `{"jsonrpc":"2.0","method":"msrp_gateway:end_session","id":"9"}`, rpcInvalidParams, `"9"`},
		{"end empty params", `{"jsonrpc":"2.0","method":"msrp_gateway:end_session","params":[],"id":"9"}`, rpcInvalidParams, `"9"`},
		{"end wrong name", `{"jsonrpc":"2.0","method":"msrp_gateway:end_session","params":{"session":"k"},"id":"9"}`, rpcInvalidParams, `"9"`},
		{"end key not a string", `{"jsonrpc":"2.0","method":"msrp_gw_end_session","params":{"key":12},"id":"9"}`, rpcInvalidParams, `"9"`},
		{"end empty key", `{"jsonrpc":"2.0","method":"msrp_gw_end_session","params":[""],"id":"9"}`, rpcInvalidParams, `"9"`},
		{"end two keys", `{"jsonrpc":"2.0","method":"msrp_gw_end_session","params":["a","b"],"id":"9"}`, rpcInvalidParams, `"9"`},
		{"list with params", `{"jsonrpc":"2.0","method":"msrp_gw_list_sessions","params":["x"],"id":2.5}`, rpcInvalidParams, `2.5`},
		{"null id", `{"jsonrpc":"2.0","method":"nope","id":null}`, rpcMethodNotFound, `null`},
	}
	gw := newFakeGateway(liveSessions()...)
	srv := newTestServer(t, gw, nil, Options{})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, resp := miCall(t, srv.URL, c.body)
			if status != 200 {
				t.Errorf("HTTP status %d, want 200 (errors travel in the JSON-RPC body)", status)
			}
			code, msg := errorCode(t, resp)
			if code != c.code || msg == "" {
				t.Errorf("error %d %q, want code %d; answer %v", code, msg, c.code, resp)
			}
			if resp["result"] != nil {
				t.Errorf("error answer also has a result: %s", resp["result"])
			}
			if string(resp["id"]) != c.id {
				t.Errorf("id %s, want %s", resp["id"], c.id)
			}
		})
	}
	if e := gw.endedKeys(); len(e) != 0 {
		t.Errorf("a refused request ended sessions: %q", e)
	}
}

func TestMINotificationGetsNoBody(t *testing.T) {
	gw := newFakeGateway(liveSessions()...)
	srv := newTestServer(t, gw, nil, Options{})
	status, _, body := do(t, "POST", srv.URL+"/mi", "", `{"jsonrpc":"2.0","method":"msrp_gw_end_session","params":["`+keyAlice+`"]}`)
	if status != http.StatusNoContent || len(body) != 0 {
		t.Fatalf("notification: status %d body %q, want 204 and nothing", status, body)
	}
	if e := gw.endedKeys(); len(e) != 1 {
		t.Fatalf("notification still runs the command: ended %q", e)
	}
}

func TestMIMethodAndSize(t *testing.T) {
	srv := newTestServer(t, newFakeGateway(), nil, Options{})
	if status, _, _ := do(t, "GET", srv.URL+"/mi", "", ""); status != http.StatusMethodNotAllowed {
		t.Errorf("GET /mi: %d, want 405", status)
	}
	big := `{"jsonrpc":"2.0","method":"msrp_gw_list_sessions","id":"` + strings.Repeat("x", maxBodyBytes) + `"}`
	if status, _, _ := do(t, "POST", srv.URL+"/mi", "", big); status != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized /mi body: %d, want 413", status)
	}
}

// FuzzMI feeds arbitrary bodies to /mi: every answer must be one well-formed JSON-RPC response or a 204.
func FuzzMI(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc": "2.0", "method": "msrp_gateway:list_sessions", "id": "1"}`,
		`{"jsonrpc": "2.0", "method": "msrp_gateway:list_sessions", "params": [], "id": "1"}`,
		`{"jsonrpc": "2.0", "method": "msrp_gateway:end_session", "params": {"key": "` + keyAlice + `"}, "id": 1}`,
		`{"jsonrpc": "2.0", "method": "msrp_gw_end_session", "params": ["` + keySlash + `"], "id": 1}`,
		`{"jsonrpc": "2.0", "method": "msrp_gw_end_session", "params": ["x"]}`,
		`[1,2]`, `{"jsonrpc":`, `null`, `{"id":{}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		h := NewHandler(newFakeGateway(liveSessions()...), nil, Options{})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/mi", bytes.NewReader(body)))
		if rec.Code == http.StatusNoContent {
			if rec.Body.Len() != 0 {
				t.Fatalf("204 with a body: %q", rec.Body)
			}
			return
		}
		var resp rpcResponse
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
			t.Fatalf("status %d, answer not JSON: %v\n%s", rec.Code, err, rec.Body)
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
			t.Fatalf("answer not a response: %v", err)
		}
		_, hasResult := raw["result"]
		if hasResult == (resp.Error != nil) {
			t.Fatalf("answer must have exactly one of result and error: %s", rec.Body)
		}
		if _, ok := raw["id"]; !ok {
			t.Fatalf("answer without id: %s", rec.Body)
		}
	})
}
