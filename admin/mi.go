package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
)

// JSON-RPC 2.0 error codes (https://www.jsonrpc.org/specification#error_object), as OpenSIPS mi_http uses them.
const (
	rpcParseError     = -32700
	rpcInvalidRequest = -32600
	rpcMethodNotFound = -32601
	rpcInvalidParams  = -32602
)

// miSessionNotFound is the reference's error for end_session on an unknown key.
const (
	miSessionNotFoundCode = 404
	miSessionNotFoundMsg  = "Session doesn't exist"
)

// rpcRequest is a JSON-RPC 2.0 request after validation.
type rpcRequest struct {
	Method string
	Params json.RawMessage // nil, a JSON array or a JSON object
	ID     json.RawMessage // nil for a notification; otherwise a string, number or null, echoed verbatim
}

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

type rpcResponse struct {
	JSONRPC string          `json:"jsonrpc"`
	Result  any             `json:"result,omitempty"`
	Error   *rpcError       `json:"error,omitempty"`
	ID      json.RawMessage `json:"id"`
}

// miSession is one entry of list_sessions, with the reference's field names.
type miSession struct {
	Key             string `json:"key"`
	MsgSideTo       string `json:"msg_side_to"`
	MSRPUASessionID string `json:"msrp_ua_session_id"`
	MsgSideRURI     string `json:"msg_side_ruri"`
}

// parseRPCRequest validates one JSON-RPC 2.0 request. On failure it returns the error to answer and whatever id
// could be read (JSON null when none), so the error response still correlates when it can.
func parseRPCRequest(body []byte) (rpcRequest, *rpcError, json.RawMessage) {
	null := json.RawMessage("null")
	if !json.Valid(body) {
		return rpcRequest{}, &rpcError{Code: rpcParseError, Message: "Parse error"}, null
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		// Scalars are not requests at all, nor is an array inside a batch (a batch is split by serveBatch).
		return rpcRequest{}, &rpcError{Code: rpcInvalidRequest, Message: "Invalid Request"}, null
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return rpcRequest{}, &rpcError{Code: rpcParseError, Message: "Parse error"}, null
	}
	var req rpcRequest
	id, hasID := raw["id"]
	if hasID {
		switch firstByte(id) {
		case '"', 'n', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			req.ID = compact(id)
		default:
			return rpcRequest{}, &rpcError{Code: rpcInvalidRequest, Message: "Invalid Request"}, null
		}
	}
	errID := req.ID
	if errID == nil {
		errID = null
	}
	var version string
	if err := json.Unmarshal(raw["jsonrpc"], &version); err != nil || version != "2.0" {
		return rpcRequest{}, &rpcError{Code: rpcInvalidRequest, Message: "Invalid Request"}, errID
	}
	m, ok := raw["method"]
	if !ok || firstByte(m) != '"' {
		return rpcRequest{}, &rpcError{Code: rpcInvalidRequest, Message: "Invalid Request"}, errID
	}
	if err := json.Unmarshal(m, &req.Method); err != nil {
		return rpcRequest{}, &rpcError{Code: rpcInvalidRequest, Message: "Invalid Request"}, errID
	}
	if p, ok := raw["params"]; ok {
		switch firstByte(p) {
		case 'n': // null: same as absent
		case '[', '{':
			req.Params = p
		default:
			return rpcRequest{}, &rpcError{Code: rpcInvalidRequest, Message: "Invalid Request"}, errID
		}
	}
	return req, nil, errID
}

func firstByte(b json.RawMessage) byte {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

func compact(b json.RawMessage) json.RawMessage {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return json.RawMessage("null")
	}
	return buf.Bytes()
}

// miHandler serves POST /mi.
type miHandler struct {
	gw  Gateway
	log *slog.Logger
}

func (h *miHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeJSON(w, http.StatusRequestEntityTooLarge, rpcResponse{JSONRPC: "2.0", Error: &rpcError{Code: rpcInvalidRequest, Message: "Request too large"}, ID: json.RawMessage("null")})
			return
		}
		// A broken chunked body, or one that stalled past the server's read timeout: nothing to parse.
		h.log.Warn("MI request body unreadable", "remote", r.RemoteAddr, "error", err)
		writeJSON(w, http.StatusBadRequest, rpcResponse{JSONRPC: "2.0", Error: &rpcError{Code: rpcParseError, Message: "Parse error: request body unreadable"}, ID: json.RawMessage("null")})
		return
	}
	if firstByte(body) == '[' && json.Valid(body) {
		h.serveBatch(w, body, r.RemoteAddr)
		return
	}
	resp, ok := h.handle(body, r.RemoteAddr)
	if !ok {
		// A notification: JSON-RPC 2.0 says the server must not reply.
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// serveBatch answers a JSON-RPC 2.0 batch (a JSON array of requests): each element goes through the path of a
// single request, in order, and the answer is the array of their responses, notifications left out. An empty
// array is one Invalid Request error, not an array; a batch with only notifications gets 204 and no body, as
// a single notification does. A batch of more than maxBatchRequests elements is refused whole, nothing run.
func (h *miHandler) serveBatch(w http.ResponseWriter, body []byte, remote string) {
	var elems []json.RawMessage
	if err := json.Unmarshal(body, &elems); err != nil {
		// body was checked to be a valid JSON array; this is not expected.
		writeJSON(w, http.StatusOK, rpcResponse{JSONRPC: "2.0", Error: &rpcError{Code: rpcParseError, Message: "Parse error"}, ID: json.RawMessage("null")})
		return
	}
	if len(elems) == 0 {
		writeJSON(w, http.StatusOK, rpcResponse{JSONRPC: "2.0", Error: &rpcError{Code: rpcInvalidRequest, Message: "Invalid Request"}, ID: json.RawMessage("null")})
		return
	}
	if len(elems) > maxBatchRequests {
		h.log.Warn("MI batch refused: too many requests", "requests", len(elems), "limit", maxBatchRequests, "remote", remote)
		writeJSON(w, http.StatusOK, rpcResponse{JSONRPC: "2.0", Error: &rpcError{Code: rpcInvalidRequest,
			Message: fmt.Sprintf("Invalid Request: batch of %d requests, the limit is %d", len(elems), maxBatchRequests)}, ID: json.RawMessage("null")})
		return
	}
	out := make([]rpcResponse, 0, len(elems))
	for _, e := range elems {
		if resp, ok := h.handle(e, remote); ok {
			out = append(out, resp)
		}
	}
	if len(out) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// handle runs one JSON-RPC request and returns its response; ok is false for a notification, which gets none.
// A request too broken to tell whether it is a notification gets its error response.
func (h *miHandler) handle(body []byte, remote string) (resp rpcResponse, ok bool) {
	req, rerr, id := parseRPCRequest(body)
	if rerr != nil {
		return rpcResponse{JSONRPC: "2.0", Error: rerr, ID: id}, true
	}
	result, rerr := h.call(req, remote)
	if req.ID == nil {
		return rpcResponse{}, false
	}
	if rerr != nil {
		return rpcResponse{JSONRPC: "2.0", Error: rerr, ID: id}, true
	}
	return rpcResponse{JSONRPC: "2.0", Result: result, ID: id}, true
}

// call runs one MI command.
func (h *miHandler) call(req rpcRequest, remote string) (any, *rpcError) {
	switch req.Method {
	case "msrp_gateway:list_sessions", "msrp_gw_list_sessions":
		if !noParams(req.Params) {
			return nil, &rpcError{Code: rpcInvalidParams, Message: "Invalid params"}
		}
		ss := h.gw.Sessions()
		out := make([]miSession, 0, len(ss))
		for _, s := range ss {
			out = append(out, miSession{Key: s.Key, MsgSideTo: s.MsgSideTo, MSRPUASessionID: s.MSRPSessionID, MsgSideRURI: s.MsgSideRURI})
		}
		return out, nil
	case "msrp_gateway:end_session", "msrp_gw_end_session":
		key, ok := keyParam(req.Params)
		if !ok {
			return nil, &rpcError{Code: rpcInvalidParams, Message: "Invalid params"}
		}
		if !h.gw.EndSession(key) {
			return nil, &rpcError{Code: miSessionNotFoundCode, Message: miSessionNotFoundMsg}
		}
		h.log.Info("session ended by operator", "key", key, "via", "mi", "remote", remote)
		return "OK", nil
	default:
		return nil, &rpcError{Code: rpcMethodNotFound, Message: "Method not found"}
	}
}

// noParams accepts what list_sessions callers send: nothing, [] or {}.
func noParams(p json.RawMessage) bool {
	if p == nil {
		return true
	}
	var v any
	if err := json.Unmarshal(p, &v); err != nil {
		return false
	}
	switch v := v.(type) {
	case []any:
		return len(v) == 0
	case map[string]any:
		return len(v) == 0
	}
	return false
}

// keyParam reads end_session's one parameter, named ({"key": "…"}) or positional (["…"]).
func keyParam(p json.RawMessage) (string, bool) {
	var key string
	switch firstByte(p) {
	case '{':
		var named map[string]json.RawMessage
		if json.Unmarshal(p, &named) != nil || len(named) != 1 {
			return "", false
		}
		v, ok := named["key"]
		if !ok || json.Unmarshal(v, &key) != nil {
			return "", false
		}
	case '[':
		var pos []json.RawMessage
		if json.Unmarshal(p, &pos) != nil || len(pos) != 1 || json.Unmarshal(pos[0], &key) != nil {
			return "", false
		}
	default:
		return "", false
	}
	// json.Unmarshal of null into a string leaves it empty; an empty key names no session either way.
	return key, key != ""
}
