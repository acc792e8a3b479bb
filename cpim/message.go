package cpim

import (
	"bytes"
	"fmt"
	"strings"
)

// maxHeaders bounds the header lines Parse accepts in each header block, so a hostile document cannot make
// it build an unbounded header list. Real documents have fewer than twenty.
const maxHeaders = 256

// Header is one header line: Name as written (CPIM names are case-sensitive) and Value verbatim. A CPIM
// header with parameters ("Subject:;lang=fr text") keeps them in Value, starting with ';'.
type Header struct{ Name, Value string }

// Message is a parsed message/cpim document.
type Message struct {
	Headers        []Header // CPIM message headers in order (From, To, DateTime, NS, imdn.Message-ID, ...)
	ContentHeaders []Header // MIME headers of the encapsulated entity (Content-Type, Content-Disposition, ...)
	Body           []byte   // encapsulated content; after Parse it aliases the parsed slice
}

// Parse parses a CPIM document (the body of a message/cpim SEND or MESSAGE).
//
// It tolerates the RFC 4975 §11.4 / RFC 5438 layout with no empty line between the CPIM headers and the
// encapsulated MIME headers (a "Content-*" or "MIME-Version" header ends the CPIM headers; no CPIM header
// has such a name), LF-only line endings, folded MIME headers, and a leading outer "Content-Type:
// message/cpim" header block as printed in RFC 3862 §5.1. The body is everything after the empty line that
// ends the MIME headers, byte for byte. Errors wrap ErrMalformed and say what was wrong.
func Parse(b []byte) (*Message, error) {
	r := lineReader{b: b}
	m := &Message{}

	// RFC 3862 §5.1 shows the outer MIME header in the document; in MSRP and SIP it is the transport's
	// Content-Type, but some senders copy it into the body.
	if name, val, ok := splitHeader(r.peek()); ok && strings.EqualFold(name, "Content-Type") &&
		strings.EqualFold(mediaType(val), "message/cpim") {
		for {
			line, ok := r.next()
			if !ok {
				return nil, fmt.Errorf("%w: outer MIME header block is not followed by an empty line", ErrMalformed)
			}
			if line == "" {
				break
			}
		}
	}

	blank := false // CPIM headers ended with an empty line (RFC 3862 layout)
	for !blank {
		line, ok := r.next()
		if !ok {
			return nil, fmt.Errorf("%w: %d CPIM header(s) and no encapsulated MIME entity", ErrMalformed, len(m.Headers))
		}
		if line == "" {
			blank = true
			break
		}
		name, val, ok := splitHeader(line)
		if !ok {
			return nil, fmt.Errorf("%w: line %d %q is not a header", ErrMalformed, r.lineNo, clip(line))
		}
		if isMIMEName(name) { // RFC 4975 §11.4 layout: the encapsulated headers start without an empty line
			m.ContentHeaders = append(m.ContentHeaders, Header{Name: name, Value: strings.TrimSpace(val)})
			break
		}
		if len(m.Headers) == maxHeaders {
			return nil, fmt.Errorf("%w: more than %d CPIM headers", ErrMalformed, maxHeaders)
		}
		m.Headers = append(m.Headers, Header{Name: name, Value: cpimValue(val)})
	}

	for {
		line, ok := r.next()
		if !ok {
			if len(m.ContentHeaders) == 0 {
				return nil, fmt.Errorf("%w: no encapsulated MIME entity after the CPIM headers", ErrMalformed)
			}
			m.Body = b[len(b):] // headers up to the end of the document: an empty entity
			return m, nil
		}
		if line == "" {
			if len(m.ContentHeaders) == 0 {
				return nil, fmt.Errorf("%w: encapsulated MIME entity has no headers", ErrMalformed)
			}
			m.Body = b[r.pos:]
			return m, nil
		}
		if (line[0] == ' ' || line[0] == '\t') && len(m.ContentHeaders) > 0 { // MIME folding (RFC 5322 §2.2.3)
			last := &m.ContentHeaders[len(m.ContentHeaders)-1]
			last.Value = strings.TrimSpace(last.Value + " " + strings.TrimSpace(line))
			continue
		}
		name, val, ok := splitHeader(line)
		if !ok {
			return nil, fmt.Errorf("%w: line %d %q is not a MIME header of the encapsulated entity", ErrMalformed, r.lineNo, clip(line))
		}
		if len(m.ContentHeaders) == maxHeaders {
			return nil, fmt.Errorf("%w: more than %d MIME headers", ErrMalformed, maxHeaders)
		}
		m.ContentHeaders = append(m.ContentHeaders, Header{Name: name, Value: strings.TrimSpace(val)})
	}
}

// Get returns the value of the first CPIM header with exactly that name ("" when there is none). CPIM
// header names are case-sensitive (RFC 3862 §3); a namespaced header is asked for with its prefix, as in
// Get("imdn.Message-ID") — but see IMDNMessageID, which resolves whatever prefix the sender declared.
func (m *Message) Get(name string) string {
	v, _ := m.lookup(name)
	return v
}

func (m *Message) lookup(name string) (string, bool) {
	for _, h := range m.Headers {
		if h.Name == name {
			return h.Value, true
		}
	}
	return "", false
}

// ContentType returns the Content-Type of the encapsulated entity, "" when it has none.
func (m *Message) ContentType() string {
	for _, h := range m.ContentHeaders {
		if strings.EqualFold(h.Name, "Content-Type") {
			return h.Value
		}
	}
	return ""
}

// EntityType returns the Content-Type of the encapsulated entity: ContentType, or, for an entity with a body
// and no Content-Type, text/plain, the MIME default (RFC 2045 §5.2).
func (m *Message) EntityType() string {
	if ct := m.ContentType(); ct != "" || len(m.Body) == 0 {
		return ct
	}
	return "text/plain"
}

// From returns the URI inside <...> of the CPIM From header ("" when absent).
func (m *Message) From() string { return uriOf(m.Get("From")) }

// To returns the URI inside <...> of the first CPIM To header ("" when absent).
func (m *Message) To() string { return uriOf(m.Get("To")) }

// Marshal renders the document in the RFC 3862 form: CPIM headers, an empty line, the encapsulated MIME
// headers, an empty line, the body; CRLF line endings. Header values are written as they are.
func (m *Message) Marshal() []byte {
	n := 4 + len(m.Body)
	for _, h := range m.Headers {
		n += len(h.Name) + len(h.Value) + 4
	}
	for _, h := range m.ContentHeaders {
		n += len(h.Name) + len(h.Value) + 4
	}
	var b bytes.Buffer
	b.Grow(n)
	for _, h := range m.Headers {
		b.WriteString(h.Name)
		b.WriteByte(':')
		if h.Value != "" && h.Value[0] != ';' {
			b.WriteByte(' ')
		}
		b.WriteString(h.Value)
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	for _, h := range m.ContentHeaders {
		b.WriteString(h.Name)
		b.WriteString(": ")
		b.WriteString(h.Value)
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	b.Write(m.Body)
	return b.Bytes()
}

// lineReader hands out the lines of b without their CRLF or LF.
type lineReader struct {
	b      []byte
	pos    int
	lineNo int
}

// next returns the next line; ok is false at the end of b.
func (r *lineReader) next() (string, bool) {
	if r.pos >= len(r.b) {
		return "", false
	}
	rest := r.b[r.pos:]
	i := bytes.IndexByte(rest, '\n')
	var line []byte
	if i < 0 {
		line, r.pos = rest, len(r.b)
	} else {
		line, r.pos = rest[:i], r.pos+i+1
	}
	r.lineNo++
	return string(bytes.TrimSuffix(line, []byte{'\r'})), true
}

// peek returns the next line without consuming it.
func (r *lineReader) peek() string {
	save := *r
	line, _ := r.next()
	*r = save
	return line
}

// splitHeader splits "Name:rest" and checks that Name is a token (RFC 3862 §3.6: no blanks, controls or
// separators; '.' separates a namespace prefix).
func splitHeader(line string) (name, rest string, ok bool) {
	i := strings.IndexByte(line, ':')
	if i <= 0 {
		return "", "", false
	}
	name = line[:i]
	for j := 0; j < len(name); j++ {
		c := name[j]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return "", "", false
		}
	}
	return name, line[i+1:], true
}

// cpimValue takes what follows a CPIM header's colon: parameters (";lang=fr ...") are kept with the value;
// otherwise the single SP of RFC 3862 §3 is dropped. Anything else — escapes, further blanks — is kept.
func cpimValue(rest string) string {
	if strings.HasPrefix(rest, " ") {
		return rest[1:]
	}
	return rest
}

// isMIMEName reports whether a header name belongs to the encapsulated entity's MIME headers.
func isMIMEName(name string) bool {
	return len(name) > 8 && strings.EqualFold(name[:8], "Content-") || strings.EqualFold(name, "MIME-Version")
}

// uriOf returns the URI inside the last <...> of a From/To/cc value (a formal name may precede it), the
// trimmed value when it has no angle brackets, or "" when a '<' is never closed: not an address.
func uriOf(v string) string {
	if i := strings.LastIndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			return v[i+1 : i+j]
		}
		return ""
	}
	return strings.TrimSpace(v)
}

// mediaType returns a Content-Type value without parameters or blanks.
func mediaType(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.TrimSpace(ct)
}

// clip shortens a piece of hostile input before it goes into an error message.
func clip(s string) string {
	const max = 40
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
