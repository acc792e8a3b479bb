package gateway

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
)

// This file keeps the books for the session and queue bounds of SPEC §8 (limits.max_sessions,
// max_sessions_per_source, max_queued_per_session, max_queued_total). Going over a bound refuses that one
// session or message; nothing else is touched. The MSRP connection, header and partial-message bounds are
// enforced by the msrp endpoint the gateway configures (gateway.go, startMSRP).

// limiter counts live sessions (in total and per source address of the request that created them) and
// messages queued or in flight towards the MSRP side over all sessions.
type limiter struct {
	lim config.Limits

	mu       sync.Mutex
	sessions map[*Session]string // counted session -> its source address
	perSrc   map[string]int

	queued atomic.Int64 // MESSAGEs accepted and not yet finished, over all sessions
}

func newLimiter(lim config.Limits) *limiter {
	return &limiter{lim: lim, sessions: make(map[*Session]string), perSrc: make(map[string]int)}
}

// limitError is a bound that refused something: which key, its value, and what was counted.
type limitError struct {
	key   string
	limit int
	count int
	what  string
}

func (e *limitError) Error() string {
	return fmt.Sprintf("limits.%s %d reached (%d %s)", e.key, e.limit, e.count, e.what)
}

// boundName names the bound err is over ("limits.max_queued_total"), without the counts: a metric label
// takes it, one value per bound. Other errors keep their text.
func boundName(err error) string {
	var le *limitError
	if errors.As(err, &le) {
		return "limits." + le.key
	}
	return err.Error()
}

// admitSession counts s against max_sessions and max_sessions_per_source, or says which bound refuses it.
// force counts it without checking (a newer INVITE replacing a live session for the same key: the old one
// is about to go, and refusing the replacement would leave two parties unable to talk).
func (l *limiter) admitSession(s *Session, source string, force bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.sessions[s]; ok {
		return nil
	}
	if !force {
		if max := l.lim.MaxSessions; max > 0 && len(l.sessions) >= max {
			return &limitError{key: "max_sessions", limit: max, count: len(l.sessions), what: "sessions"}
		}
		if max := l.lim.MaxSessionsPerSource; max > 0 && l.perSrc[source] >= max {
			return &limitError{key: "max_sessions_per_source", limit: max, count: l.perSrc[source], what: "sessions from " + source}
		}
	}
	l.sessions[s] = source
	l.perSrc[source]++
	return nil
}

// releaseSession uncounts s; calling it again, or for a session never counted, does nothing.
func (l *limiter) releaseSession(s *Session) {
	l.mu.Lock()
	defer l.mu.Unlock()
	src, ok := l.sessions[s]
	if !ok {
		return
	}
	delete(l.sessions, s)
	if l.perSrc[src]--; l.perSrc[src] <= 0 {
		delete(l.perSrc, src)
	}
}

// admitMessage counts one more MESSAGE queued for (or in flight on) s against max_queued_per_session and
// max_queued_total. queued is what s holds now. Call releaseMessage when the message is finished.
func (l *limiter) admitMessage(queued int64) error {
	if max := l.lim.MaxQueuedPerSession; max > 0 && queued >= int64(max) {
		return &limitError{key: "max_queued_per_session", limit: max, count: int(queued), what: "messages queued in the session"}
	}
	n := l.queued.Add(1)
	if max := l.lim.MaxQueuedTotal; max > 0 && n > int64(max) {
		l.queued.Add(-1)
		return &limitError{key: "max_queued_total", limit: max, count: int(n - 1), what: "messages queued in all sessions"}
	}
	return nil
}

func (l *limiter) releaseMessage() { l.queued.Add(-1) }

// queueFull says whether max_queued_total leaves no room: a MESSAGE that would create a session is then
// refused before the session exists (no INVITE for a message that cannot be queued).
func (l *limiter) queueFull() error {
	if max := l.lim.MaxQueuedTotal; max > 0 && l.queued.Load() >= int64(max) {
		return &limitError{key: "max_queued_total", limit: max, count: int(l.queued.Load()), what: "messages queued in all sessions"}
	}
	return nil
}

// sourceHost is the IP address a request came from (its transport source, not a header).
func sourceHost(req *sip.Request) string {
	host, _, err := net.SplitHostPort(req.Source())
	if err != nil {
		return req.Source()
	}
	return host
}

// retryAfter is the Retry-After header of a 503 for a bound (limits.retry_after).
func (g *Gateway) retryAfter() sip.Header {
	retry := int(g.cfg.Limits.RetryAfter / time.Second)
	if retry <= 0 {
		retry = 5
	}
	return sip.NewHeader("Retry-After", strconv.Itoa(retry))
}
