package admin

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
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

// miBatch posts a batch body to /mi and decodes the answer, which must be a JSON array of responses.
func miBatch(t *testing.T, srvURL, body string) []map[string]json.RawMessage {
	t.Helper()
	status, h, b := do(t, "POST", srvURL+"/mi", "", body)
	if status != http.StatusOK || h.Get("Content-Type") != "application/json" {
		t.Fatalf("batch %s: status %d Content-Type %q, want 200 application/json\n%s", body, status, h.Get("Content-Type"), b)
	}
	var resps []map[string]json.RawMessage
	if err := json.Unmarshal(b, &resps); err != nil {
		t.Fatalf("answer to batch %s is not a JSON array: %v\n%s", body, err, b)
	}
	for i, r := range resps {
		if string(r["jsonrpc"]) != `"2.0"` {
			t.Errorf("batch answer %d: jsonrpc %s, want \"2.0\"", i, r["jsonrpc"])
		}
		if _, hasID := r["id"]; !hasID || (r["result"] == nil) == (r["error"] == nil) {
			t.Errorf("batch answer %d is no response (an id and exactly one of result and error): %v", i, r)
		}
	}
	return resps
}

// rpc builds one request of a batch; an empty id makes it a notification.
func rpc(method, params, id string) string {
	s := `{"jsonrpc":"2.0","method":"` + method + `"`
	if params != "" {
		s += `,"params":` + params
	}
	if id != "" {
		s += `,"id":` + id
	}
	return s + "}"
}

func batch(reqs ...string) string { return "[" + strings.Join(reqs, ", ") + "]" }

// TestMIBatch: a batch is answered by an array with one response per request that has an id, in the order of
// the requests, each as that request alone would get it; notifications run and get no entry.
func TestMIBatch(t *testing.T) {
	gw := newFakeGateway(liveSessions()...)
	srv := newTestServer(t, gw, nil, Options{})
	resps := miBatch(t, srv.URL, batch(
		rpc("msrp_gateway:end_session", `{"key":"`+keyAlice+`"}`, `"2"`),
		rpc("msrp_gw_end_session", `["`+keyCarol+`"]`, ""), // a notification
		rpc("msrp_gateway:list_sessions", "", `1`),
		rpc("dlg_list", "", `3`),
		rpc("msrp_gw_list_sessions", `["x"]`, `4.5`),
		rpc("msrp_gw_end_session", `["`+keyAlice+`"]`, `null`),
	))
	want := []struct {
		id     string
		result string // exact JSON, or "" when an error is wanted
		code   int
	}{
		{`"2"`, `"OK"`, 0},
		{`1`, `[{"key":"` + keySlash + `","msg_side_to":"tel:+1/555/0100","msrp_ua_session_id":"qq77","msg_side_ruri":"tel:+1/555/0100"}]`, 0},
		{`3`, "", rpcMethodNotFound},
		{`4.5`, "", rpcInvalidParams},
		{`null`, "", miSessionNotFoundCode}, // alice was ended by the first request
	}
	if len(resps) != len(want) {
		t.Fatalf("%d responses, want %d: %v", len(resps), len(want), resps)
	}
	for i, w := range want {
		r := resps[i]
		if string(r["id"]) != w.id {
			t.Errorf("response %d: id %s, want %s", i, r["id"], w.id)
		}
		if w.result != "" {
			if got := compact(r["result"]); string(got) != w.result {
				t.Errorf("response %d (id %s): result %s, want %s", i, w.id, got, w.result)
			}
			continue
		}
		if code, msg := errorCode(t, r); code != w.code || msg == "" {
			t.Errorf("response %d (id %s): error %d %q, want code %d", i, w.id, code, msg, w.code)
		}
	}
	if e := gw.endedKeys(); !slices.Equal(e, []string{keyAlice, keyCarol}) {
		t.Errorf("gateway ended %q, want alice's then carol's session (the notification ran too)", e)
	}
}

// TestMIBatchEndUnknownAndGood: in one batch, end_session on an unknown key gets the reference's 404 while the
// good calls beside it still run and answer.
func TestMIBatchEndUnknownAndGood(t *testing.T) {
	gw := newFakeGateway(liveSessions()...)
	srv := newTestServer(t, gw, nil, Options{})
	resps := miBatch(t, srv.URL, batch(
		rpc("msrp_gateway:end_session", `{"key":"sip:nobody@x:sip:y@z"}`, `"gone"`),
		rpc("msrp_gw_end_session", `["`+keySlash+`"]`, `"good"`),
	))
	if len(resps) != 2 {
		t.Fatalf("%d responses, want 2: %v", len(resps), resps)
	}
	code, msg := errorCode(t, resps[0])
	if string(resps[0]["id"]) != `"gone"` || code != 404 || msg != "Session doesn't exist" {
		t.Errorf(`unknown key: id %s error %d %q, want "gone" 404 "Session doesn't exist"`, resps[0]["id"], code, msg)
	}
	if string(resps[1]["id"]) != `"good"` || string(resps[1]["result"]) != `"OK"` {
		t.Errorf(`known key: id %s result %s error %s, want "good" "OK"`, resps[1]["id"], resps[1]["result"], resps[1]["error"])
	}
	if e := gw.endedKeys(); !slices.Equal(e, []string{keySlash}) {
		t.Errorf("gateway ended %q, want only %q", e, keySlash)
	}
}

// TestMIBatchNotificationsOnly: a batch of notifications runs them all and gets no body at all, like a single
// notification: 204.
func TestMIBatchNotificationsOnly(t *testing.T) {
	gw := newFakeGateway(liveSessions()...)
	srv := newTestServer(t, gw, nil, Options{})
	status, _, body := do(t, "POST", srv.URL+"/mi", "", batch(
		rpc("msrp_gw_end_session", `["`+keyAlice+`"]`, ""),
		rpc("msrp_gateway:end_session", `{"key":"`+keyCarol+`"}`, ""),
		rpc("msrp_gw_end_session", `["sip:nobody@x:sip:y@z"]`, ""), // fails, silently
	))
	if status != http.StatusNoContent || len(body) != 0 {
		t.Fatalf("notification-only batch: status %d body %q, want 204 and nothing", status, body)
	}
	if e := gw.endedKeys(); !slices.Equal(e, []string{keyAlice, keyCarol}) {
		t.Errorf("gateway ended %q, want alice's and carol's sessions", e)
	}
}

// TestMIBatchEmpty: an empty array is not a batch but one Invalid Request, answered by one error object.
func TestMIBatchEmpty(t *testing.T) {
	srv := newTestServer(t, newFakeGateway(liveSessions()...), nil, Options{})
	for _, body := range []string{`[]`, " [ \n ] "} {
		status, resp := miCall(t, srv.URL, body)
		code, msg := errorCode(t, resp)
		if status != 200 || code != rpcInvalidRequest || msg == "" || string(resp["id"]) != "null" || resp["result"] != nil {
			t.Errorf("%q: status %d answer %v, want 200 and one error %d with id null", body, status, resp, rpcInvalidRequest)
		}
	}
}

// TestMIBatchInvalidElements: an element that is no valid request gets its own Invalid Request error (with the
// id when one could be read); the valid elements around it are served.
func TestMIBatchInvalidElements(t *testing.T) {
	gw := newFakeGateway(liveSessions()...)
	srv := newTestServer(t, gw, nil, Options{})
	resps := miBatch(t, srv.URL, `[1, `+rpc("msrp_gw_end_session", `["`+keyAlice+`"]`, `"ok"`)+`, "x",
		{"jsonrpc":"1.0","method":"msrp_gw_list_sessions","id":7}, [], [`+rpc("msrp_gw_list_sessions", "", "8")+`],
		{"jsonrpc":"2.0","method":"msrp_gw_list_sessions","id":{"a":1}}, null, {}]`)
	want := []struct {
		id   string
		code int
	}{{`null`, rpcInvalidRequest}, {`"ok"`, 0}, {`null`, rpcInvalidRequest}, {`7`, rpcInvalidRequest},
		{`null`, rpcInvalidRequest}, {`null`, rpcInvalidRequest}, {`null`, rpcInvalidRequest}, {`null`, rpcInvalidRequest},
		{`null`, rpcInvalidRequest}}
	if len(resps) != len(want) {
		t.Fatalf("%d responses, want %d: %v", len(resps), len(want), resps)
	}
	for i, w := range want {
		code, _ := errorCode(t, resps[i])
		if string(resps[i]["id"]) != w.id || code != w.code {
			t.Errorf("response %d: id %s error %d, want id %s error %d: %v", i, resps[i]["id"], code, w.id, w.code, resps[i])
		}
	}
	if string(resps[1]["result"]) != `"OK"` {
		t.Errorf("the valid element got %v, want result \"OK\"", resps[1])
	}
	if e := gw.endedKeys(); !slices.Equal(e, []string{keyAlice}) {
		t.Errorf("gateway ended %q, want only alice's session (nested requests do not run)", e)
	}
}

// TestMIBatchLimit: a batch of maxBatchRequests requests is served; one more is refused whole, with one error
// that names the limit, and none of its requests runs.
func TestMIBatchLimit(t *testing.T) {
	gw := newFakeGateway(liveSessions()...)
	srv := newTestServer(t, gw, nil, Options{})
	reqs := make([]string, 0, maxBatchRequests+1)
	for i := range maxBatchRequests {
		reqs = append(reqs, rpc("msrp_gw_list_sessions", "", strconv.Itoa(i)))
	}
	if resps := miBatch(t, srv.URL, batch(reqs...)); len(resps) != maxBatchRequests {
		t.Fatalf("a batch of %d (the limit): %d responses", maxBatchRequests, len(resps))
	}

	reqs = append(reqs[:maxBatchRequests-1], rpc("msrp_gw_end_session", `["`+keyAlice+`"]`, ""),
		rpc("msrp_gw_end_session", `["`+keyCarol+`"]`, `"last"`))
	status, resp := miCall(t, srv.URL, batch(reqs...))
	code, msg := errorCode(t, resp)
	if status != 200 || code != rpcInvalidRequest || string(resp["id"]) != "null" || resp["result"] != nil {
		t.Fatalf("a batch over the limit: status %d answer %v, want 200 and one error %d with id null", status, resp, rpcInvalidRequest)
	}
	limit := strconv.Itoa(maxBatchRequests)
	if !strings.Contains(msg, strconv.Itoa(maxBatchRequests+1)) || !strings.Contains(msg, limit) {
		t.Errorf("error message %q does not say the batch size (%d) and the limit (%s)", msg, maxBatchRequests+1, limit)
	}
	if e := gw.endedKeys(); len(e) != 0 {
		t.Errorf("a refused batch ended sessions: %q", e)
	}
}

// FuzzMI feeds arbitrary bodies to /mi: every answer must be one well-formed JSON-RPC response, a non-empty
// array of them (a batch), or a 204.
func FuzzMI(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc": "2.0", "method": "msrp_gateway:list_sessions", "id": "1"}`,
		`{"jsonrpc": "2.0", "method": "msrp_gateway:list_sessions", "params": [], "id": "1"}`,
		`{"jsonrpc": "2.0", "method": "msrp_gateway:end_session", "params": {"key": "` + keyAlice + `"}, "id": 1}`,
		`{"jsonrpc": "2.0", "method": "msrp_gw_end_session", "params": ["` + keySlash + `"], "id": 1}`,
		`{"jsonrpc": "2.0", "method": "msrp_gw_end_session", "params": ["x"]}`,
		`[1,2]`, `{"jsonrpc":`, `null`, `{"id":{}}`, `[]`, `[{"jsonrpc":"2.0","method":"msrp_gw_list_sessions","id":1},{"jsonrpc":"2.0","method":"x"}]`,
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
		b := bytes.TrimSpace(rec.Body.Bytes())
		if len(b) > 0 && b[0] == '[' {
			var all []json.RawMessage
			if err := json.Unmarshal(b, &all); err != nil || len(all) == 0 || len(all) > maxBatchRequests {
				t.Fatalf("status %d, batch answer not an array of 1 to %d: %v\n%s", rec.Code, maxBatchRequests, err, b)
			}
			for _, r := range all {
				checkFuzzResponse(t, r)
			}
			return
		}
		checkFuzzResponse(t, b)
	})
}

func checkFuzzResponse(t *testing.T, b []byte) {
	t.Helper()
	var resp rpcResponse
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatalf("answer not a JSON object: %v\n%s", err, b)
	}
	if err := json.Unmarshal(b, &resp); err != nil {
		t.Fatalf("answer not a response: %v", err)
	}
	_, hasResult := raw["result"]
	if hasResult == (resp.Error != nil) {
		t.Fatalf("answer must have exactly one of result and error: %s", b)
	}
	if _, ok := raw["id"]; !ok {
		t.Fatalf("answer without id: %s", b)
	}
}

// rawRequest writes req verbatim on a new connection to srv and reads one response.
func rawRequest(t *testing.T, srv *httptest.Server, req string) (*http.Response, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := fmt.Fprint(c, req); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// A /mi request whose body cannot be read (a broken chunked encoding, or a body shorter than its
// Content-Length) is answered "200 OK" with an empty body: the handler returns without writing anything, so a
// JSON-RPC client gets a success status and no response object at all. It should get a 4xx with a JSON-RPC
// error (JSON-RPC 2.0 §5: a request with an id gets a Response; -32700 for what cannot be parsed).
func TestMIUnreadableBodyIsNot200(t *testing.T) {
	srv := newTestServer(t, newFakeGateway(liveSessions()...), nil, Options{})
	cases := map[string]string{
		"broken chunked": "POST /mi HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"zz\r\n{\"jsonrpc\":\"2.0\",\"method\":\"msrp_gw_list_sessions\",\"id\":1}\r\n0\r\n\r\n",
	}
	for name, req := range cases {
		t.Run(name, func(t *testing.T) {
			resp, body := rawRequest(t, srv, req)
			if resp.StatusCode == http.StatusOK {
				t.Errorf("unreadable /mi body answered %s, Content-Type %q, body %q; want a 4xx with a JSON-RPC error",
					resp.Status, resp.Header.Get("Content-Type"), body)
			}
		})
	}
	// The daemon's admin server has a ReadTimeout (cmd/msrpgw adminReadTimeout): a body that stalls past it is
	// the same unreadable body, and is answered the same "200 OK", empty.
	slow := httptest.NewUnstartedServer(NewHandler(newFakeGateway(liveSessions()...), nil, Options{}))
	slow.Config.ReadTimeout = 300 * time.Millisecond
	slow.Start()
	t.Cleanup(slow.Close)
	t.Run("body stalled past ReadTimeout", func(t *testing.T) {
		resp, body := rawRequest(t, slow, "POST /mi HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
			"Content-Length: 100\r\n\r\n{\"jsonrpc\":")
		if resp.StatusCode == http.StatusOK {
			t.Errorf("stalled /mi body answered %s, Content-Type %q, body %q; want a 4xx (408 or 400) with a JSON-RPC error",
				resp.Status, resp.Header.Get("Content-Type"), body)
		}
	})
}
