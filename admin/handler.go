package admin

import (
	"bufio"
	"cmp"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options configure the admin HTTP handler.
type Options struct {
	Token  string       // bearer token required on every endpoint except /healthz when non-empty
	Pprof  bool         // mount net/http/pprof under /debug/pprof/
	Logger *slog.Logger // nil discards
}

// Bounds on what one admin request may ask for.
const (
	// maxBodyBytes bounds request bodies (/mi is the only endpoint that reads one); an MI request is a few
	// hundred bytes.
	maxBodyBytes = 1 << 20
	// maxBatchRequests bounds the requests in one /mi JSON-RPC batch: each may end a session (a BYE), and a
	// batch runs to its end before it is answered.
	maxBatchRequests = 100
)

// NewHandler returns the admin HTTP handler:
//
//	GET    /api/sessions        every session (JSON array)
//	GET    /api/sessions/{key}  one session (404 if none); key path-escaped
//	DELETE /api/sessions/{key}  end it with BYE (404 if none)
//	POST   /api/drain           start a graceful drain
//	GET    /healthz             process up (never needs the token)
//	GET    /readyz              200 when ready, 503 when not (starting, draining)
//	GET    /metrics             Prometheus exposition of m's registry
//	POST   /mi                  OpenSIPS mi_http compatible JSON-RPC 2.0 (single requests and batches)
//	       /debug/pprof/        when opts.Pprof
//
// m may be nil, in which case /metrics answers 404.
func NewHandler(gw Gateway, m *Metrics, opts Options) http.Handler {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &api{gw: gw, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.HandleFunc("GET /readyz", a.readyz)
	mux.HandleFunc("GET /api/sessions", a.listSessions)
	// Without this the DELETE pattern below, which also matches an empty key, would make the mux offer DELETE
	// on the collection (in a 405's Allow, and as a redirect to /api/sessions/).
	mux.HandleFunc("/api/sessions", methodNotAllowed("GET, HEAD"))
	// {key...} rather than {key}: a client that forgot to escape '/' in a key still reaches the session; an
	// escaped one (%2F) matches either way because the mux matches on the escaped path.
	mux.HandleFunc("GET /api/sessions/{key...}", a.showSession)
	mux.HandleFunc("DELETE /api/sessions/{key...}", a.endSession)
	mux.HandleFunc("POST /api/drain", a.drain)
	mux.Handle("POST /mi", &miHandler{gw: gw, log: log})
	if m != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry(), promhttp.HandlerOpts{
			ErrorLog:          slogErrorLogger{log},
			Registry:          m.Registry(),
			EnableOpenMetrics: true,
		}))
	}
	if opts.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	if opts.Token == "" {
		return mux
	}
	return &bearerAuth{next: mux, token: sha256.Sum256([]byte(opts.Token)), log: log}
}

// api holds the JSON endpoints.
type api struct {
	gw  Gateway
	log *slog.Logger
}

func (a *api) healthz(w http.ResponseWriter, _ *http.Request) {
	writeText(w, http.StatusOK, "ok")
}

func (a *api) readyz(w http.ResponseWriter, _ *http.Request) {
	if !a.gw.Ready() {
		writeText(w, http.StatusServiceUnavailable, "not ready")
		return
	}
	writeText(w, http.StatusOK, "ready")
}

func (a *api) listSessions(w http.ResponseWriter, _ *http.Request) {
	ss := a.gw.Sessions()
	if ss == nil {
		ss = []Session{} // an empty table is [], never null, so scripts can iterate it
	}
	// Oldest first, so the output of two calls lines up and new sessions appear at the end.
	slices.SortStableFunc(ss, func(x, y Session) int {
		if c := x.Created.Compare(y.Created); c != 0 {
			return c
		}
		return cmp.Compare(x.Key, y.Key)
	})
	writeJSONList(w, ss)
}

func (a *api) showSession(w http.ResponseWriter, r *http.Request) {
	key, ok := sessionKey(w, r)
	if !ok {
		return
	}
	s, found := a.gw.Session(key)
	if !found {
		writeError(w, http.StatusNotFound, "no session with key "+strconv.Quote(key))
		return
	}
	writeJSON(w, http.StatusOK, s)
}

func (a *api) endSession(w http.ResponseWriter, r *http.Request) {
	key, ok := sessionKey(w, r)
	if !ok {
		return
	}
	if !a.gw.EndSession(key) {
		writeError(w, http.StatusNotFound, "no session with key "+strconv.Quote(key))
		return
	}
	a.log.Info("session ended by operator", "key", key, "via", "api", "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]any{"key": key, "ended": true})
}

func (a *api) drain(w http.ResponseWriter, r *http.Request) {
	a.gw.Drain()
	a.log.Info("drain requested", "via", "api", "remote", r.RemoteAddr)
	writeJSON(w, http.StatusAccepted, map[string]any{"draining": true})
}

// sessionKey extracts the session key from the path; it answers 400 itself when there is none.
func sessionKey(w http.ResponseWriter, r *http.Request) (string, bool) {
	key := r.PathValue("key")
	if key == "" {
		writeError(w, http.StatusBadRequest, "missing session key in path: use /api/sessions/{path-escaped key}")
		return "", false
	}
	return key, true
}

// bearerAuth requires "Authorization: Bearer <token>" on everything but /healthz, which probes must reach
// without credentials.
type bearerAuth struct {
	next  http.Handler
	token [sha256.Size]byte // the token's digest: comparing digests takes the same time whatever the lengths
	log   *slog.Logger
}

func (b *bearerAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" || b.authorized(r) {
		b.next.ServeHTTP(w, r)
		return
	}
	b.log.Warn("admin request refused: missing or wrong bearer token", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
	w.Header().Set("WWW-Authenticate", `Bearer realm="msrpgw"`)
	if r.URL.Path == "/mi" {
		// JSON-RPC clients still get a JSON body they can show.
		writeJSON(w, http.StatusUnauthorized, rpcResponse{JSONRPC: "2.0", Error: &rpcError{Code: http.StatusUnauthorized, Message: "Unauthorized"}, ID: json.RawMessage("null")})
		return
	}
	writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
}

func (b *bearerAuth) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	// ConstantTimeCompare of the tokens themselves would return at once on a length mismatch, telling the
	// token's length to whoever times the answers.
	// Only HTTP's optional whitespace (space, tab) is dropped, as admin.token's validation assumes: TrimSpace
	// also took a no-break space or an ideographic space off a token that ends in one, which no request could
	// then present.
	got := sha256.Sum256([]byte(strings.Trim(tok, " \t")))
	return subtle.ConstantTimeCompare(got[:], b.token[:]) == 1
}

// apiError is the body of every non-2xx answer of the JSON API.
type apiError struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, apiError{Error: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away; nothing to tell it
}

// writeJSONList writes list as writeJSON does, one element at a time: with 100,000 sessions the whole array
// encoded and indented at once held a buffer of over 100 MB (heap profile during a listing).
func writeJSONList[T any](w http.ResponseWriter, list []T) {
	if len(list) == 0 {
		writeJSON(w, http.StatusOK, list)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 32<<10)
	bw.WriteString("[\n")
	for i := range list {
		b, err := json.MarshalIndent(list[i], "  ", "  ")
		if err != nil {
			return // as Encode: nothing more to tell the client
		}
		bw.WriteString("  ")
		bw.Write(b)
		if i < len(list)-1 {
			bw.WriteString(",")
		}
		bw.WriteString("\n")
	}
	bw.WriteString("]\n")
	_ = bw.Flush() // the client went away; nothing to tell it
}

// methodNotAllowed answers 405 naming the methods the resource has.
func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, r.Method+" not allowed on "+r.URL.Path+"; allowed: "+allow)
	}
}

func writeText(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(msg + "\n"))
}

// slogErrorLogger adapts slog to promhttp's error logger.
type slogErrorLogger struct{ log *slog.Logger }

func (l slogErrorLogger) Println(v ...any) {
	l.log.Error("metrics exposition failed", "err", strings.TrimSpace(fmt.Sprintln(v...)))
}
