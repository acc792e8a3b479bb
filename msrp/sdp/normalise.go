package sdp

import (
	"fmt"
	"strings"
)

// maxBodySize bounds the work Parse does on one body. A real MSRP offer is well under 4 KiB; the bound is
// generous so that honest but verbose bodies (an RCS offer with many attributes) still pass, and small enough
// that a hostile body cannot make us spend much on it.
const maxBodySize = 256 << 10

// section is one m= block kept for pion, in the order pion's grammar wants its lines.
type section struct {
	m     string
	c     string
	attrs []string
	index int // the position of its m= line among all the body's m= lines
}

// normalised is an SDP body rewritten for pion/sdp, plus what was dropped on the way that error messages
// still need to mention.
type normalised struct {
	text    string
	mLines  int      // m= lines in the original body, usable or not
	mValues []string // their values, in order
	index   []int    // for each m= block kept, in order, its position in mValues
}

// normalise rewrites body into the form pion/sdp's strict grammar accepts, because real peers send what
// pion refuses: LF-only line endings, no final CRLF, trailing blanks, session lines out of
// order, abridged bodies without v=/o=/s=/t= (RFC 4975's own examples), and media pion does not know
// (m=image for T.38, TCP/WSS/MSRP). It keeps only what Parse reads — v, o, s, c, t and a at session level,
// and the m, c and a lines of m=message blocks with an MSRP proto — and synthesises the mandatory session
// lines that are missing. Lines that are not "<letter>=<value>" make the body not SDP at all.
func normalise(body []byte) (normalised, error) {
	if len(body) > maxBodySize {
		return normalised{}, fmt.Errorf("%w: body of %d bytes exceeds %d", ErrMalformed, len(body), maxBodySize)
	}
	var (
		v, o, s, c, t string
		haveV, haveO  bool
		haveS, haveT  bool
		sessAttrs     []string
		sections      []section
		cur           *section // nil at session level
		inDropped     bool     // inside an m= block we do not keep
		mLines, lines int
		mValues       []string
	)
	rest := string(body)
	for lineNo := 1; rest != ""; lineNo++ {
		var line string
		if i := strings.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			line, rest = rest, ""
		}
		line = strings.TrimRight(line, " \t\r")
		if line == "" {
			continue
		}
		if len(line) < 2 || line[1] != '=' || line[0] < 'a' || line[0] > 'z' {
			return normalised{}, fmt.Errorf("%w: line %d %q is not <type>=<value>", ErrMalformed, lineNo, clip(line))
		}
		// No SDP value may hold a CR (RFC 4566 §9: byte-string and text exclude CR and LF), and pion reads
		// one as a line end and cuts the value's last byte ("a=path:x\ry;tcp" gave paths "x" and "y;tc").
		if strings.IndexByte(line, '\r') >= 0 {
			return normalised{}, fmt.Errorf("%w: line %d %q holds a CR that does not end it", ErrMalformed, lineNo, clip(line))
		}
		lines++
		typ, val := line[0], line[2:]
		if typ == 'm' {
			mLines++
			mValues = append(mValues, val)
			m, ok := messageMLine(val)
			inDropped = !ok
			if ok {
				sections = append(sections, section{m: m, index: mLines - 1})
				cur = &sections[len(sections)-1]
			} else {
				cur = nil
			}
			continue
		}
		if inDropped {
			continue
		}
		if cur != nil {
			switch typ {
			case 'c':
				if cur.c == "" {
					cur.c = val
				}
			case 'a':
				cur.attrs = append(cur.attrs, val)
			}
			continue
		}
		// Session level: keep the first of each single-valued line; pion refuses repeats.
		switch typ {
		case 'v':
			if !haveV {
				v, haveV = val, true
			}
		case 'o':
			if !haveO {
				o, haveO = val, true
			}
		case 's':
			if !haveS {
				s, haveS = val, true
			}
		case 'c':
			if c == "" {
				c = val
			}
		case 't':
			if !haveT {
				t, haveT = val, true
			}
		case 'a':
			sessAttrs = append(sessAttrs, val)
		}
	}
	if lines == 0 {
		return normalised{}, fmt.Errorf("%w: empty body", ErrMalformed)
	}

	var b strings.Builder
	b.Grow(len(body) + 64)
	put := func(typ byte, val string) {
		b.WriteByte(typ)
		b.WriteByte('=')
		b.WriteString(val)
		b.WriteString("\r\n")
	}
	if !haveV {
		v = "0"
	}
	put('v', v)
	if !haveO {
		o = "- 0 0 IN IP4 0.0.0.0"
	}
	put('o', o)
	if strings.TrimSpace(s) == "" {
		s = "-" // RFC 4566: "s= " is the way to say no name, and pion wants something there
	}
	put('s', s)
	if c != "" {
		put('c', c)
	}
	if !haveT {
		t = "0 0"
	}
	put('t', t)
	for _, a := range sessAttrs {
		put('a', a)
	}
	index := make([]int, len(sections))
	for i := range sections {
		sec := &sections[i]
		index[i] = sec.index
		put('m', sec.m)
		if sec.c != "" {
			put('c', sec.c)
		}
		for _, a := range sec.attrs {
			put('a', a)
		}
	}
	return normalised{text: b.String(), mLines: mLines, mValues: mValues, index: index}, nil
}

// messageMLine returns the m= value to hand to pion when val describes MSRP media, with the proto spelled
// canonically; ok is false for any other media, which Parse has no use for.
func messageMLine(val string) (string, bool) {
	f := strings.Fields(val)
	if len(f) < 3 || f[0] != "message" {
		return "", false
	}
	proto, ok := canonicalProto(f[2])
	if !ok {
		return "", false
	}
	f[2] = proto
	return strings.Join(f, " "), true
}

// canonicalProto accepts the two MSRP protos of RFC 4975 §8.1 in any letter case.
func canonicalProto(p string) (string, bool) {
	switch {
	case strings.EqualFold(p, protoTCP):
		return protoTCP, true
	case strings.EqualFold(p, protoTLS):
		return protoTLS, true
	}
	return "", false
}

// clip shortens a piece of hostile input before it goes into an error message.
func clip(s string) string {
	const max = 40
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
