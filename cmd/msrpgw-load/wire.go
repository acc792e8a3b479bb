package main

import (
	"bytes"
	"net"
	"sync"
	"time"
)

// The tool measures each message's latency twice. "latency" is what its code sees: from just before it
// builds the request to when its handler has the delivered message, so the tool's own work, scheduling and
// wake-ups on both ends are in it. "wire latency" (MESSAGE→MSRP) is the gateway's request in to message out
// as the sockets see it: from the sendto of the MESSAGE (over loopback the datagram is in the gateway's
// socket when it returns) to the kernel's receive timestamp of the SEND on the tool's MSRP connection (over
// loopback: when the gateway's write delivered it; msrp.Config.RxTimestamps).

// wireClock remembers when each MESSAGE→MSRP message first left the tool.
type wireClock struct {
	mu   sync.Mutex
	sent map[wireKey]int64 // Unix ns of the first sendto
}

type wireKey struct {
	session int
	seq     int64
}

func newWireClock() *wireClock { return &wireClock{sent: make(map[wireKey]int64)} }

var msgToMSRPMark = []byte(bodyPrefix + " " + string(msgToMSRP) + " ")

// wrote notes a datagram written at t (or about to be); only the tool's MESSAGE→MSRP requests count, each at its first write
// (a retransmission is not a new request).
func (w *wireClock) wrote(b []byte, t time.Time) {
	i := bytes.Index(b, []byte("\r\n\r\n"))
	if i < 0 || !bytes.HasPrefix(b[i+4:], msgToMSRPMark) {
		return
	}
	st, err := parseBody(b[i+4:])
	if err != nil {
		return
	}
	k := wireKey{st.session, st.seq}
	w.mu.Lock()
	if _, ok := w.sent[k]; !ok {
		w.sent[k] = t.UnixNano()
	}
	w.mu.Unlock()
}

// latency returns the wire latency of a message received at rx, and false when either end is unknown.
func (w *wireClock) latency(st stamp, rx time.Time) (time.Duration, bool) {
	k := wireKey{st.session, st.seq}
	w.mu.Lock()
	sent, ok := w.sent[k]
	delete(w.sent, k)
	w.mu.Unlock()
	if !ok || rx.IsZero() {
		return 0, false
	}
	return time.Duration(rx.UnixNano() - sent), true
}

// clockedConn is a PacketConn that tells the wireClock about every datagram it writes.
type clockedConn struct {
	net.PacketConn
	clock *wireClock
}

// WriteTo notes the datagram before writing it: over loopback its SEND can come out of the gateway before
// this goroutine runs again.
func (c clockedConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	c.clock.wrote(b, time.Now())
	return c.PacketConn.WriteTo(b, addr)
}
