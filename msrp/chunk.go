package msrp

import (
	"fmt"
	"time"
)

// interruptibleAbove is the chunk size above which range-end must be '*' (RFC 4975 §7.1.1).
const interruptibleAbove = 2048

// Outgoing is a message to send on a session.
type Outgoing struct {
	MessageID     string   // "" = generated
	ContentType   string   // "" with nil Body = bodiless SEND
	Headers       []Header // extra MIME headers, placed before Content-Type
	Body          []byte   // not copied: do not modify it until the done callback ran
	SuccessReport bool
	FailureReport string // "" = "yes"
}

// chunkMessage splits o into SEND requests of at most size body octets: new tid per chunk (chosen when
// written), same Message-ID, Byte-Range start-end/total ('*' end for chunks over 2048 octets), flag '+'
// on all but the last, '$' on the last.
func chunkMessage(o *Outgoing, msgID string, to, from []URI, size int) []*Message {
	if size <= 0 {
		size = interruptibleAbove
	}
	fr := lowerASCII(o.FailureReport)
	base := make([]Header, 0, 5+len(o.Headers))
	base = append(base, Header{HdrMessageID, msgID})
	brIdx := -1
	if o.Body != nil || o.ContentType != "" {
		brIdx = len(base)
		base = append(base, Header{HdrByteRange, ""})
	}
	if o.SuccessReport {
		base = append(base, Header{HdrSuccessReport, "yes"})
	}
	if fr == "" {
		fr = "yes"
	}
	// Written even as "yes", the default (RFC 4975 §7.1.4): a peer or an operator reading a trace sees what
	// was asked for (SPEC §2, §5).
	base = append(base, Header{HdrFailureReport, fr})
	if brIdx < 0 { // bodiless SEND: no MIME headers at all (RFC 4975 §7.1)
		return []*Message{{Method: MethodSend, ToPath: to, FromPath: from, Headers: base, Flag: '$'}}
	}
	base = append(base, o.Headers...)
	base = append(base, Header{HdrContentType, o.ContentType})
	body := o.Body
	if body == nil {
		body = []byte{}
	}
	total := int64(len(body))
	n := (len(body) + size - 1) / size
	if n == 0 {
		n = 1
	}
	if n == 1 { // the usual message: its headers are base itself, and one allocation holds the rest
		one := &struct {
			m Message
			p [1]*Message
		}{}
		br := ByteRange{Start: 1, End: total, Total: total}
		if total > interruptibleAbove {
			br.End = -1
		}
		base[brIdx].Value = br.String()
		one.m = Message{Method: MethodSend, ToPath: to, FromPath: from, Headers: base, Body: body, Flag: '$'}
		one.p[0] = &one.m
		return one.p[:]
	}
	msgs := make([]*Message, 0, n)
	blocks := make([]Message, n)
	for i := 0; i < n; i++ {
		lo := i * size
		hi := min(lo+size, len(body))
		hdrs := make([]Header, len(base))
		copy(hdrs, base)
		br := ByteRange{Start: int64(lo) + 1, End: int64(hi), Total: total}
		if hi-lo > interruptibleAbove {
			br.End = -1
		}
		hdrs[brIdx].Value = br.String()
		m := &blocks[i]
		*m = Message{Method: MethodSend, ToPath: to, FromPath: from, Headers: hdrs, Body: body[lo:hi:hi], Flag: '+'}
		if i == n-1 {
			m.Flag = '$'
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// reassemblyLimits bound what one session buffers.
type reassemblyLimits struct {
	maxSize    int64
	maxChunks  int
	maxPartial int
	expiry     time.Duration
}

// reassembler joins the chunks of incoming messages by Message-ID (RFC 4975 §7.3.1). It is used from one
// connection's reader goroutine at a time (under the session's delivery lock).
type reassembler struct {
	partials map[string]*partial
	tombs    int // refused entries kept so later chunks of that message get 413 too
}

type span struct{ lo, hi int64 } // [lo, hi) 0-based

type partial struct {
	buf      []byte
	have     []span // sorted, merged
	total    int64  // fixed by the '$' chunk; -1 until then
	chunks   int
	refused  bool     // 413 sent: later chunks get 413 too, until expiry
	first    *Message // the chunk starting at byte 1 (its MIME headers describe the message)
	deadline time.Time
}

// chunkResult says what to do with a SEND chunk.
type chunkResult struct {
	complete bool
	body     []byte
	first    *Message // headers of the message (first chunk, or the only one)
	chunks   int
	refuse   int // 413 when the stack refuses the chunk; 0 otherwise
	reason   string
	aborted  bool
}

// add takes one SEND with a body.
func (ra *reassembler) add(m *Message, now time.Time, lim reassemblyLimits) chunkResult {
	id := m.MessageID()
	// Without Byte-Range a chunk starts at byte 1 (RFC 4975 §7.1.1: ByteRange gives 1-*/*); it is the whole
	// message only when its flag says so. The reader refused malformed ones.
	br, _ := m.ByteRange()
	p := ra.partials[id]
	if p == nil {
		if br.Start == 1 && m.Flag == '$' {
			if int64(len(m.Body)) > lim.maxSize {
				return chunkResult{refuse: 413, reason: fmt.Sprintf("message of %d bytes over %d", len(m.Body), lim.maxSize)}
			}
			return chunkResult{complete: true, body: m.Body, first: m, chunks: 1}
		}
		if m.Flag == '#' {
			return chunkResult{aborted: true}
		}
		n := len(ra.partials) - ra.tombs
		p = ra.track(id, now.Add(lim.expiry))
		if n >= lim.maxPartial {
			// Refused as a whole (a refused entry, as any 413): a later chunk of it must not start a partial
			// message that can never complete and holds a slot until it expires.
			return ra.refuse(id, p, m, lim.maxPartial, fmt.Sprintf("%d partial messages already", n))
		}
	}
	p.deadline = now.Add(lim.expiry)
	if p.refused {
		if m.Flag != '+' {
			delete(ra.partials, id)
			ra.tombs--
		}
		return chunkResult{refuse: 413, reason: "message already refused"}
	}
	p.chunks++
	start := br.Start - 1
	end := start + int64(len(m.Body))
	switch {
	case p.chunks > lim.maxChunks:
		return ra.refuse(id, p, m, lim.maxPartial, fmt.Sprintf("more than %d chunks", lim.maxChunks))
	case br.Total > lim.maxSize:
		return ra.refuse(id, p, m, lim.maxPartial, fmt.Sprintf("Byte-Range total %d over %d", br.Total, lim.maxSize))
	case end > lim.maxSize:
		return ra.refuse(id, p, m, lim.maxPartial, fmt.Sprintf("chunk ends at byte %d, over %d", end, lim.maxSize))
	}
	if m.Flag == '#' {
		delete(ra.partials, id)
		return chunkResult{aborted: true}
	}
	if end > int64(len(p.buf)) {
		// Grow to the declared total at once when it is known and sane (checked above), else geometrically.
		if end > int64(cap(p.buf)) {
			c := min(max(end, 2*int64(cap(p.buf)), br.Total), lim.maxSize)
			nb := make([]byte, end, c)
			copy(nb, p.buf)
			p.buf = nb
		} else {
			p.buf = p.buf[:end]
		}
	}
	copy(p.buf[start:end], m.Body)
	if end > start {
		p.have = addSpan(p.have, span{start, end})
	}
	if start == 0 {
		p.first = m
	}
	if m.Flag == '$' {
		p.total = end
	}
	if p.total >= 0 && (p.total == 0 || (len(p.have) > 0 && p.have[0].lo == 0 && p.have[0].hi >= p.total)) {
		delete(ra.partials, id)
		first := p.first
		if first == nil {
			first = m
		}
		return chunkResult{complete: true, body: p.buf[:p.total:p.total], first: first, chunks: p.chunks}
	}
	return chunkResult{}
}

// stop refuses m's message after m was refused before reaching add (a chunk over Limits.MaxChunkBytes), as
// add refuses one: the chunks received so far are dropped and, unless m was its last, later ones get 413, also
// when m was the first chunk of it to come.
func (ra *reassembler) stop(m *Message, now time.Time, lim reassemblyLimits) {
	id := m.MessageID()
	p := ra.partials[id]
	switch {
	case p == nil:
		p = ra.track(id, now.Add(lim.expiry))
	case p.refused:
		return
	}
	ra.refuse(id, p, m, lim.maxPartial, "")
}

// track starts an entry for message id, dropped at deadline unless a chunk of it comes before.
func (ra *reassembler) track(id string, deadline time.Time) *partial {
	if ra.partials == nil {
		ra.partials = make(map[string]*partial)
	}
	p := &partial{total: -1, deadline: deadline}
	ra.partials[id] = p
	return p
}

func (ra *reassembler) refuse(id string, p *partial, m *Message, maxTombs int, reason string) chunkResult {
	if m.Flag != '+' || ra.tombs >= maxTombs {
		delete(ra.partials, id)
	} else {
		p.refused, p.buf, p.have, p.first = true, nil, nil, nil
		ra.tombs++
	}
	return chunkResult{refuse: 413, reason: reason}
}

// reset forgets every partial message and refused entry (the connection is gone).
func (ra *reassembler) reset() { ra.partials, ra.tombs = nil, 0 }

// expire drops partial messages whose last chunk is older than their deadline.
func (ra *reassembler) expire(now time.Time) int {
	n := 0
	for id, p := range ra.partials {
		if now.After(p.deadline) {
			delete(ra.partials, id)
			if p.refused {
				ra.tombs--
			}
			n++
		}
	}
	return n
}

// addSpan inserts s into the sorted, merged list.
func addSpan(have []span, s span) []span {
	out := have[:0:0]
	placed := false
	for _, h := range have {
		switch {
		case h.hi < s.lo:
			out = append(out, h)
		case s.hi < h.lo:
			if !placed {
				out = append(out, s)
				placed = true
			}
			out = append(out, h)
		default: // overlapping or adjacent: merge into s
			s.lo = min(s.lo, h.lo)
			s.hi = max(s.hi, h.hi)
		}
	}
	if !placed {
		out = append(out, s)
	}
	return out
}
