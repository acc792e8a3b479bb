package admin

import (
	"bytes"
	"encoding/json"
	"errors"
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
		// Batches (arrays) are not supported by mi_http either; scalars are not requests at all.
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
		}
		return
	}
	req, rerr, id := parseRPCRequest(body)
	if rerr != nil {
		writeJSON(w, http.StatusOK, rpcResponse{JSONRPC: "2.0", Error: rerr, ID: id})
		return
	}
	result, rerr := h.call(req, r.RemoteAddr)
	if req.ID == nil {
		// A notification: JSON-RPC 2.0 says the server must not reply.
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if rerr != nil {
		writeJSON(w, http.StatusOK, rpcResponse{JSONRPC: "2.0", Error: rerr, ID: id})
		return
	}
	writeJSON(w, http.StatusOK, rpcResponse{JSONRPC: "2.0", Result: result, ID: id})
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
