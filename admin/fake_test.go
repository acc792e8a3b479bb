package admin

import (
	"maps"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeGateway is a Gateway with a settable session table; it records what the admin surface asked of it.
type fakeGateway struct {
	mu       sync.Mutex
	sessions map[string]Session
	ended    []string
	drains   int
	ready    bool
	stats    Stats
}

func newFakeGateway(ss ...Session) *fakeGateway {
	g := &fakeGateway{sessions: make(map[string]Session), ready: true}
	for _, s := range ss {
		g.sessions[s.Key] = s
	}
	return g
}

func (g *fakeGateway) Sessions() []Session {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Collect(maps.Values(g.sessions))
}

func (g *fakeGateway) Session(key string) (Session, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s, ok := g.sessions[key]
	return s, ok
}

func (g *fakeGateway) EndSession(key string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.sessions[key]; !ok {
		return false
	}
	delete(g.sessions, key)
	g.ended = append(g.ended, key)
	return true
}

func (g *fakeGateway) Drain() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.drains++
	g.ready = false
}

func (g *fakeGateway) Ready() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ready
}

func (g *fakeGateway) Stats() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stats
}

func (g *fakeGateway) drainCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.drains
}

func (g *fakeGateway) endedKeys() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.ended)
}

// Keys shaped like the default templates make them ($fu:$tu), plus one with '/' that must travel escaped.
const (
	keyAlice = "sip:bob@b.example.com:sip:alice@a.example.com"
	keyCarol = "sip:dave@198.51.100.7:5060;transport=tcp:sip:carol@a.example.com"
	keySlash = "sip:eve@c.example.com:tel:+1/555/0100"
)

// liveSessions returns sessions as a running gateway would show them.
func liveSessions() []Session {
	t0 := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	return []Session{
		{
			Key: keyAlice, State: StateUp, Origin: "message",
			MsgSideFrom: "sip:bob@b.example.com", MsgSideTo: "sip:alice@a.example.com", MsgSideRURI: "sip:alice@a.example.com",
			MSRPSessionID: "a8f3kq2zz91", MSRPPeerPath: "msrp://127.0.0.1:40000/peer1;tcp", CallID: "c1@127.0.0.1",
			Created: t0, LastMessage: t0.Add(time.Minute), LastSend: t0.Add(2 * time.Minute),
			MessagesToMSRP: 3, MessagesToSIP: 2,
		},
		{
			Key: keyCarol, State: StateSettingUp, Origin: "message",
			MsgSideFrom: "sip:dave@198.51.100.7", MsgSideTo: "sip:carol@a.example.com", MsgSideRURI: "sip:carol@a.example.com",
			MSRPSessionID: "zz09x", CallID: "c2@127.0.0.1", Created: t0.Add(time.Hour), LastMessage: t0.Add(time.Hour), Queued: 2,
		},
		{
			Key: keySlash, State: StateUp, Origin: "invite",
			MsgSideFrom: "sip:eve@c.example.com", MsgSideTo: "tel:+1/555/0100", MsgSideRURI: "tel:+1/555/0100",
			MSRPSessionID: "qq77", MSRPPeerPath: "msrp://127.0.0.1:40001/peer3;tcp", CallID: "c3@127.0.0.1",
			Created: t0.Add(2 * time.Hour), LastSend: t0.Add(2 * time.Hour),
			MessagesToSIP: 1,
		},
	}
}

// newTestServer serves NewHandler on a real 127.0.0.1 listener.
func newTestServer(t *testing.T, gw Gateway, m *Metrics, opts Options) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(NewHandler(gw, m, opts))
	t.Cleanup(srv.Close)
	return srv
}
