package main

import (
	"bytes"
	"strconv"
	"sync"

	"github.com/emiago/sipgo/sip"
)

// arrivalOrder tells the order in which MSRP→MESSAGE messages reach the phones' sockets. Reorders are counted
// in that order: the handler order is not it, since sipgo runs each request's handler on a goroutine of its
// own, and counting there charged a gateway that sends several MESSAGEs at once with reorders the tool made.
// It is a sipgo transport read filter: it sees each datagram, and each TCP read in stream order, before
// parsing, and reports every stamp that begins a body. A stamp cut by a TCP read is completed by the next.
type arrivalOrder struct {
	on func(stamp) // each stamp, in arrival order; retransmissions too (flowStats.arrived ignores those)

	mu    sync.Mutex
	tails map[string][]byte // per TCP connection: the unread end of its last read, where a stamp may begin
}

// arrivalMark is what begins an MSRP→MESSAGE body: the blank line ending the headers, then the stamp.
var arrivalMark = []byte("\r\n\r\n" + bodyPrefix + " " + string(msrpToMsg) + " ")

// maxTail bounds what is kept of a TCP read: room for a mark and the two numbers after it.
var maxTail = len(arrivalMark) + 2*20 + 2

func newArrivalOrder(on func(stamp)) *arrivalOrder {
	return &arrivalOrder{on: on, tails: make(map[string][]byte)}
}

// filter is the sip.TransportReadFilter: it passes data on unchanged.
func (a *arrivalOrder) filter(info sip.TransportReadProps, data []byte) ([]byte, error) {
	if info.Transport == "UDP" {
		a.scan(data, true)
		return data, nil
	}
	key := info.RemoteAddr.String()
	a.mu.Lock()
	defer a.mu.Unlock()
	buf := append(a.tails[key], data...)
	rest := buf[a.scan(buf, false):]
	if len(rest) > maxTail {
		rest = rest[len(rest)-maxTail:]
	}
	a.tails[key] = append([]byte(nil), rest...)
	return data, nil
}

// scan reports the stamps in b and returns where what is still unread begins: after the last stamp, or at
// one cut off by b's end (whole: b is a datagram, nothing follows).
func (a *arrivalOrder) scan(b []byte, whole bool) int {
	done := 0
	for {
		i := bytes.Index(b[done:], arrivalMark)
		if i < 0 {
			return done
		}
		at := done + i
		rest := b[at+len(arrivalMark):]
		session, n1, ok := number(rest, whole)
		var seq int64
		n2 := 0
		if ok {
			seq, n2, ok = number(rest[n1:], whole)
		}
		switch {
		case n1 < 0 || n2 < 0:
			return at // cut off: the next read has the rest
		case !ok:
			done = at + len(arrivalMark) // not a stamp
			continue
		}
		a.on(stamp{flow: msrpToMsg, session: int(session), seq: seq})
		done = at + len(arrivalMark) + n1 + n2
	}
}

// number reads a decimal number and the space after it (or, in a whole datagram, its end). n is the bytes it
// took; -1 when b ends before it does and more may follow.
func number(b []byte, whole bool) (v int64, n int, ok bool) {
	for n < len(b) && b[n] >= '0' && b[n] <= '9' {
		n++
	}
	switch {
	case n == len(b) && !whole:
		return 0, -1, false
	case n == 0 || n > 18:
		return 0, 0, false
	}
	v, _ = strconv.ParseInt(string(b[:n]), 10, 64)
	if n < len(b) {
		n++ // the space
	}
	return v, n, true
}
