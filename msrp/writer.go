package msrp

import (
	"bytes"
	"io"
	"math/rand/v2"
	"strconv"
)

// NewTransactionID returns a 16-character id with 80 random bits (RFC 4975 §7.1 asks for at least 64).
// It uses math/rand/v2's top-level generator: ChaCha8 per thread, seeded by the runtime from the OS
// entropy source, so it is unpredictable without a crypto/rand system call per id.
func NewTransactionID() string {
	var b [16]byte
	fillID(b[:])
	return string(b[:])
}

// NewMessageID returns a fresh Message-ID (same shape as a transaction id: an RFC 4975 ident with 80 random
// bits). A sender that must recognise REPORTs about a message before its Send is answered, or resends a message
// under its original Message-ID (RFC 4975 §5.4), sets Outgoing.MessageID to one.
func NewMessageID() string { return NewTransactionID() }

const idAlphabet = "0123456789abcdefghijklmnopqrstuv" // 32 symbols: 5 bits each, all ALPHANUM

func fillID(b []byte) {
	x := rand.Uint64()
	y := rand.Uint64()
	for i := range b {
		if i == 12 {
			x = y
		}
		b[i] = idAlphabet[x&31]
		x >>= 5
	}
}

// AppendTo appends the wire form of m to b. For a request with a body it first makes sure the body does not
// contain "-------"+tid (RFC 4975 §7.1), choosing a new transaction id when it does or when there is none
// (m.TransactionID is updated). A zero Flag is written as '$'; responses never carry a body.
func (m *Message) AppendTo(b []byte) []byte {
	b = m.appendHead(b)
	if m.Method != "" && m.Body != nil {
		b = append(b, m.Body...)
	}
	return m.appendTail(b)
}

// WriteMessage writes m to w in one Write call.
func WriteMessage(w io.Writer, m *Message) error {
	_, err := w.Write(m.AppendTo(make([]byte, 0, 256+len(m.Body))))
	return err
}

// fixTID sets a transaction id that is absent from the body.
func (m *Message) fixTID() {
	for m.TransactionID == "" || (m.Method != "" && bodyContainsEndLine(m.Body, m.TransactionID)) {
		m.TransactionID = NewTransactionID()
	}
}

// bodyContainsEndLine reports whether "-------"+tid occurs in body, without allocating the pattern.
func bodyContainsEndLine(body []byte, tid string) bool {
	const dashes = "-------"
	for i := 0; ; {
		k := bytes.Index(body[i:], []byte(dashes))
		if k < 0 {
			return false
		}
		j := i + k + len(dashes)
		if len(body)-j >= len(tid) && string(body[j:j+len(tid)]) == tid {
			return true
		}
		i += k + 1
	}
}

// appendHead writes the start line and headers, and the blank line when a body follows.
func (m *Message) appendHead(b []byte) []byte {
	m.fixTID()
	b = append(b, "MSRP "...)
	b = append(b, m.TransactionID...)
	b = append(b, ' ')
	if m.Method != "" {
		b = append(b, m.Method...)
	} else {
		b = strconv.AppendInt(b, int64(m.StatusCode), 10)
		if m.Comment != "" {
			b = append(b, ' ')
			b = append(b, m.Comment...)
		}
	}
	b = append(b, "\r\nTo-Path: "...)
	b = appendPath(b, m.ToPath)
	b = append(b, "\r\nFrom-Path: "...)
	b = appendPath(b, m.FromPath)
	b = append(b, "\r\n"...)
	for _, h := range m.Headers {
		b = append(b, h.Name...)
		b = append(b, ": "...)
		b = append(b, h.Value...)
		b = append(b, "\r\n"...)
	}
	if m.Method != "" && m.Body != nil {
		b = append(b, "\r\n"...)
	}
	return b
}

// appendTail writes the CRLF after a body (if any) and the end-line.
func (m *Message) appendTail(b []byte) []byte {
	if m.Method != "" && m.Body != nil {
		b = append(b, "\r\n"...)
	}
	b = append(b, "-------"...)
	b = append(b, m.TransactionID...)
	f := m.Flag
	if f == 0 || m.Method == "" {
		f = '$'
	}
	return append(b, f, '\r', '\n')
}
