package msrp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"unsafe"
)

// Limits bound what a Reader accepts. Zero values take the defaults.
type Limits struct {
	MaxHeaderBytes int // start line + headers; default 16 KiB; larger -> the stream is unusable
	MaxChunkBytes  int // body of one frame; default 1 MiB; larger -> *ProtocolError with Code 413
}

const (
	defaultMaxHeaderBytes = 16 << 10
	defaultMaxChunkBytes  = 1 << 20
	initialReadBuf        = 8 << 10
	shrinkReadBufAbove    = 64 << 10
	maxTIDLen             = 64 // RFC says 32; be lenient on receive (UUID-style ids exist)
)

func (l Limits) withDefaults() Limits {
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = defaultMaxHeaderBytes
	}
	if l.MaxChunkBytes <= 0 {
		l.MaxChunkBytes = defaultMaxChunkBytes
	}
	return l
}

// ErrFraming is wrapped by reader errors after which the stream cannot be used any more (the frame
// could not be delimited: no MSRP start line, bad transaction id, header section too large, ...).
// The connection must be closed.
var ErrFraming = errors.New("msrp: unrecoverable framing error")

// ProtocolError reports a frame that was read completely (the stream stays usable) but is malformed or
// over a limit. Code is the response to send (400 or 413) when Message is a request other than REPORT;
// Message holds what could be parsed (at least TransactionID and Method or StatusCode; paths if they parsed,
// also when the error is theirs: a request's IP address URI without a port, see URI.CheckPort).
type ProtocolError struct {
	TransactionID string
	Code          int
	Reason        string
	Message       *Message
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("msrp: transaction %s: %d %s", e.TransactionID, e.Code, e.Reason)
}

// Reader reads MSRP frames from a byte stream with bounded memory. It finds the end of a body by the
// exact end-line CRLF "-------" tid flag CRLF, so bodies may contain dashed lines or other tids, and it
// works with any segmentation of the stream.
type Reader struct {
	src io.Reader
	lim Limits
	buf []byte
	r   int // start of the current frame in buf
	w   int // end of valid data
	err error
	pat []byte // "\r\n-------" + tid, reused
}

// NewReader returns a Reader on r. Zero limits take the defaults.
func NewReader(r io.Reader, lim Limits) *Reader {
	return &Reader{src: r, lim: lim.withDefaults()}
}

func (r *Reader) maxBuf() int { return r.lim.MaxHeaderBytes + r.lim.MaxChunkBytes + 2*maxTIDLen + 32 }

// fill reads more data after r.w, compacting or growing the buffer first. Offsets relative to r.r stay valid.
func (r *Reader) fill() error {
	if r.err != nil {
		return r.err
	}
	if r.w == len(r.buf) && r.r > 0 {
		r.w = copy(r.buf, r.buf[r.r:r.w])
		r.r = 0
	}
	if r.w == len(r.buf) {
		n := 2 * len(r.buf)
		if n < initialReadBuf {
			n = initialReadBuf
		}
		if n > r.maxBuf() {
			n = r.maxBuf()
		}
		if n <= len(r.buf) {
			return fmt.Errorf("%w: frame larger than %d bytes", ErrFraming, r.maxBuf())
		}
		nb := make([]byte, n)
		r.w = copy(nb, r.buf[r.r:r.w])
		r.r = 0
		r.buf = nb
	}
	for i := 0; i < 100; i++ {
		n, err := r.src.Read(r.buf[r.w:])
		r.w += n
		if err != nil {
			r.err = err
			if n > 0 {
				return nil
			}
			return err
		}
		if n > 0 {
			return nil
		}
	}
	return io.ErrNoProgress
}

// unexpected turns EOF in the middle of a frame into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// ReadMessage reads the next frame. Errors:
//   - *ProtocolError: the frame was consumed and is malformed or too big; answer it if it is a request
//     (other than REPORT) and go on reading;
//   - io.EOF at a frame boundary: the peer closed cleanly;
//   - anything else (ErrFraming, io.ErrUnexpectedEOF, network errors): close the stream.
func (r *Reader) ReadMessage() (*Message, error) {
	// Skip stray CRLFs between frames (harmless keep-alives some stacks send).
	for {
		for r.w-r.r >= 2 && r.buf[r.r] == '\r' && r.buf[r.r+1] == '\n' {
			r.r += 2
		}
		if r.w-r.r >= 2 || (r.w-r.r == 1 && r.buf[r.r] != '\r') {
			break
		}
		if err := r.fill(); err != nil {
			if r.w == r.r {
				return nil, err
			}
			return nil, unexpected(err)
		}
	}

	// Start line.
	lineEnd, err := r.lineEnd(0)
	if err != nil {
		return nil, unexpected(err)
	}
	start := r.buf[r.r : r.r+lineEnd]
	if len(start) < 5 || string(start[:5]) != "MSRP " {
		return nil, fmt.Errorf("%w: start line %q does not begin with \"MSRP \"", ErrFraming, clip(start))
	}
	sp := bytes.IndexByte(start[5:], ' ')
	if sp < 0 {
		return nil, fmt.Errorf("%w: start line %q has no method or status", ErrFraming, clip(start))
	}
	tid := start[5 : 5+sp]
	if !validTID(tid) {
		return nil, fmt.Errorf("%w: bad transaction id %q", ErrFraming, clip(tid))
	}
	r.pat = append(append(r.pat[:0], "\r\n-------"...), tid...)
	endLine := r.pat[2:] // "-------" + tid

	// Header lines, up to an empty line (a body follows) or our end-line (bodiless frame).
	pos := lineEnd + 2
	hdrEnd, bodyStart := -1, -1
	var flag byte
	for {
		le, err := r.lineEnd(pos)
		if err != nil {
			return nil, unexpected(err)
		}
		line := r.buf[r.r+pos : r.r+le]
		if len(line) == 0 {
			hdrEnd, bodyStart = pos, le+2
			break
		}
		if len(line) == len(endLine)+1 && isFlag(line[len(line)-1]) && bytes.Equal(line[:len(endLine)], endLine) {
			hdrEnd = pos
			flag = line[len(line)-1]
			pos = le + 2
			break
		}
		pos = le + 2
	}

	frameEnd := pos
	bodyLen := -1
	oversize := false
	if bodyStart >= 0 {
		bodyLen, flag, frameEnd, oversize, err = r.findBodyEnd(bodyStart)
		if err != nil {
			return nil, unexpected(err)
		}
	}

	// One allocation holds the header section and the body; header strings point into it and are never
	// written again (the header part is not reachable as a []byte), so the unsafe.String views are sound.
	if oversize {
		bodyLen = -1 // do not copy a body we refuse
	}
	n := hdrEnd
	if bodyLen > 0 {
		n += bodyLen
	}
	blk := &msgBlock{}
	data := make([]byte, n)
	copy(data, r.buf[r.r:r.r+hdrEnd])
	m := &blk.m
	if bodyLen >= 0 {
		copy(data[hdrEnd:], r.buf[r.r+bodyStart:r.r+bodyStart+bodyLen])
		m.Body = data[hdrEnd:n:n]
	}
	m.Flag = flag
	r.advance(frameEnd)

	perr := parseHead(data[:hdrEnd], blk)
	if oversize {
		m.Body = nil
		return nil, &ProtocolError{TransactionID: m.TransactionID, Code: 413,
			Reason: fmt.Sprintf("chunk body larger than %d bytes", r.lim.MaxChunkBytes), Message: m}
	}
	if perr == nil && m.Method == "" && m.Body != nil {
		perr = errors.New("response with a body")
	}
	if perr != nil {
		return nil, &ProtocolError{TransactionID: m.TransactionID, Code: 400, Reason: perr.Error(), Message: m}
	}
	return m, nil
}

// advance consumes n bytes of the current frame and releases a grown buffer once it is empty.
func (r *Reader) advance(n int) {
	r.r += n
	if r.r == r.w {
		r.r, r.w = 0, 0
		if len(r.buf) > shrinkReadBufAbove {
			r.buf = nil
		}
	}
}

// lineEnd returns the offset (relative to the frame start) of the CRLF ending the line that starts at pos.
func (r *Reader) lineEnd(pos int) (int, error) {
	scanned := pos
	for {
		if i := bytes.IndexByte(r.buf[r.r+scanned:r.w], '\n'); i >= 0 {
			e := scanned + i
			if e >= r.lim.MaxHeaderBytes {
				return 0, fmt.Errorf("%w: header section larger than %d bytes", ErrFraming, r.lim.MaxHeaderBytes)
			}
			if e == pos || r.buf[r.r+e-1] != '\r' {
				return 0, fmt.Errorf("%w: line ending in bare LF", ErrFraming)
			}
			return e - 1, nil
		}
		scanned = r.w - r.r
		if scanned >= r.lim.MaxHeaderBytes {
			return 0, fmt.Errorf("%w: header section larger than %d bytes", ErrFraming, r.lim.MaxHeaderBytes)
		}
		if err := r.fill(); err != nil {
			return 0, err
		}
	}
}

// findBodyEnd scans for CRLF "-------" tid flag CRLF from bodyStart. Bodies over MaxChunkBytes are
// discarded while scanning (only a tail that may hold a split end-line is kept) and reported as oversize.
func (r *Reader) findBodyEnd(bodyStart int) (bodyLen int, flag byte, frameEnd int, oversize bool, err error) {
	pat := r.pat
	// Lenient: some stacks put the end-line right after the blank line for an empty body (no CRLF).
	endLine := pat[2:]
	lenient := true
	from := 0
	for {
		data := r.buf[r.r+bodyStart : r.w]
		if lenient {
			n := min(len(data), len(endLine))
			switch {
			case !bytes.Equal(data[:n], endLine[:n]):
				lenient = false
			case len(data) >= len(endLine)+3:
				if isFlag(data[len(endLine)]) && data[len(endLine)+1] == '\r' && data[len(endLine)+2] == '\n' {
					return 0, data[len(endLine)], bodyStart + len(endLine) + 3, false, nil
				}
				lenient = false
			default:
				if err := r.fill(); err != nil {
					return 0, 0, 0, false, err
				}
				continue
			}
		}
		if k := bytes.Index(data[from:], pat); k >= 0 {
			k += from
			after := k + len(pat)
			if len(data) >= after+3 {
				if isFlag(data[after]) && data[after+1] == '\r' && data[after+2] == '\n' {
					return k, data[after], bodyStart + after + 3, oversize || k > r.lim.MaxChunkBytes, nil
				}
				from = k + 1
				continue
			}
			from = k // a candidate whose flag and CRLF are not here yet
		} else if f := len(data) - len(pat) + 1; f > from {
			from = f
		}
		if len(data) > r.lim.MaxChunkBytes+len(pat)+3 {
			// Drop the body scanned so far; keep the tail from the first possible end-line start.
			oversize = true
			keep := copy(r.buf[r.r+bodyStart:], data[from:])
			r.w = r.r + bodyStart + keep
			from = 0
		}
		if err := r.fill(); err != nil {
			return 0, 0, 0, false, err
		}
	}
}

func isFlag(c byte) bool { return c == '$' || c == '+' || c == '#' }

// validTID accepts ident characters (RFC 4975 §9), alphanumeric first, up to maxTIDLen.
func validTID(t []byte) bool {
	if len(t) == 0 || len(t) > maxTIDLen || !isAlnum(t[0]) {
		return false
	}
	for _, c := range t[1:] {
		if !isAlnum(c) && c != '.' && c != '-' && c != '+' && c != '%' && c != '=' {
			return false
		}
	}
	return true
}

func clip(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "..."
	}
	return string(b)
}

// msgBlock lets one allocation hold a Message and the backing arrays of its usual slices.
type msgBlock struct {
	m    Message
	to   [1]URI
	from [1]URI
	hdrs [6]Header
}

// bstr views b as a string without copying; b must never be modified afterwards.
func bstr(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// parseHead parses the start line and headers (each line CRLF-terminated) into blk.m. It fills in as much
// as it can (tid, method/status, paths) even when it returns an error, so the caller can answer 400.
func parseHead(h []byte, blk *msgBlock) error {
	m := &blk.m
	le := bytes.IndexByte(h, '\n') - 1 // every line is CRLF-terminated (checked by lineEnd)
	start := h[5:le]
	sp := bytes.IndexByte(start, ' ')
	m.TransactionID = bstr(start[:sp])
	rest := start[sp+1:]
	var firstErr error
	if len(rest) >= 3 && isDigitsB(rest[:3]) && (len(rest) == 3 || rest[3] == ' ') {
		code, _ := atoiSmall(bstr(rest[:3]))
		m.StatusCode = code
		if len(rest) > 4 {
			m.Comment = bstr(rest[4:])
		}
		if code < 100 {
			firstErr = fmt.Errorf("bad status code %d", code)
		}
	} else {
		m.Method = bstr(rest)
		if len(rest) == 0 {
			m.Method = "?"
			firstErr = errors.New("empty method")
		}
		for _, c := range rest {
			if c < 'A' || c > 'Z' {
				firstErr = fmt.Errorf("method %q is not upper-case letters", clip(rest))
				break
			}
		}
	}
	m.Headers = blk.hdrs[:0]
	h = h[le+2:]
	idx := 0
	for len(h) > 0 {
		le := bytes.IndexByte(h, '\n') - 1
		line := h[:le]
		h = h[le+2:]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			if firstErr == nil {
				firstErr = fmt.Errorf("header line %q has no name", clip(line))
			}
			idx++
			continue
		}
		nameB := line[:colon]
		val := line[colon+1:]
		for len(val) > 0 && (val[0] == ' ' || val[0] == '\t') {
			val = val[1:]
		}
		for len(val) > 0 && (val[len(val)-1] == ' ' || val[len(val)-1] == '\t') {
			val = val[:len(val)-1]
		}
		name := canonicalHeader(nameB)
		if name == "" {
			if !validToken(nameB) && firstErr == nil {
				firstErr = fmt.Errorf("bad header name %q", clip(nameB))
			}
			name = bstr(nameB)
		}
		value := bstr(val)
		switch {
		case idx == 0:
			if name != HdrToPath {
				if firstErr == nil {
					firstErr = fmt.Errorf("first header is %q, want To-Path", name)
				}
			} else if p, err := parsePathInto(blk.to[:0], value); err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("To-Path: %w", err)
				}
			} else {
				m.ToPath = p
				if m.Method != "" && m.Method != methodAuth && firstErr == nil {
					// An RFC 4976 AUTH To-Path may name a relay without a port; no other request path may
					// have an IP address without one (RFC 4975 §6).
					firstErr = checkPorts("To-Path", p)
				}
			}
		case idx == 1:
			if name != HdrFromPath {
				if firstErr == nil {
					firstErr = fmt.Errorf("second header is %q, want From-Path", name)
				}
			} else if p, err := parsePathInto(blk.from[:0], value); err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("From-Path: %w", err)
				}
			} else {
				m.FromPath = p
				if m.Method != "" && firstErr == nil {
					firstErr = checkPorts("From-Path", p)
				}
			}
		default:
			if name == HdrToPath || name == HdrFromPath {
				if firstErr == nil {
					firstErr = fmt.Errorf("%s repeated", name)
				}
			}
			if name == HdrByteRange && firstErr == nil {
				if _, err := ParseByteRange(value); err != nil {
					firstErr = err
				}
			}
			m.Headers = append(m.Headers, Header{name, value})
		}
		idx++
	}
	if firstErr == nil && idx < 2 {
		firstErr = errors.New("missing To-Path or From-Path")
	}
	if firstErr == nil && m.Method != "" && m.Body != nil && m.ContentType() == "" {
		firstErr = errors.New("body without Content-Type")
	}
	return firstErr
}

// checkPorts is URI.CheckPort on each URI of a request's path (hdr names it in the error).
func checkPorts(hdr string, p []URI) error {
	for _, u := range p {
		if err := u.CheckPort(); err != nil {
			return fmt.Errorf("%s: %w", hdr, err)
		}
	}
	return nil
}

func isDigitsB(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// validToken accepts RFC 4975 hname characters (ALPHA *(ALPHA / DIGIT / "-" / "_") and other token chars).
func validToken(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}
