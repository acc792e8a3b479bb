package gateway

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// rawUDP is a SIP peer on a bare UDP socket, for what a sipgo UA would not do: send the same datagram
// twice, name another port in its Via, ignore a request, answer late.
type rawUDP struct {
	t  *testing.T
	pc net.PacketConn
}

func newRawUDP(t *testing.T) *rawUDP {
	t.Helper()
	return newRawUDPOn(t, "127.0.0.1")
}

// newRawUDPOn is a raw UDP peer on another loopback address, host, as another machine would be.
func newRawUDPOn(t *testing.T, host string) *rawUDP {
	t.Helper()
	pc, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return &rawUDP{t: t, pc: pc}
}

func (u *rawUDP) addr() string { return u.pc.LocalAddr().String() }

// write sends text (lines ending in \n, turned into CRLF) to addr.
func (u *rawUDP) write(addr string, text string) {
	u.t.Helper()
	to, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		u.t.Fatal(err)
	}
	if _, err := u.pc.WriteTo([]byte(strings.ReplaceAll(text, "\n", "\r\n")), to); err != nil {
		u.t.Fatal(err)
	}
}

// read returns the next SIP message and where it came from.
func (u *rawUDP) read() (sip.Message, net.Addr) {
	u.t.Helper()
	buf := make([]byte, 65535)
	u.pc.SetReadDeadline(time.Now().Add(waitFor))
	n, from, err := u.pc.ReadFrom(buf)
	if err != nil {
		u.t.Fatalf("raw UDP peer %s: %v", u.addr(), err)
	}
	msg, err := newSIPParser().ParseSIP(bytes.Clone(buf[:n])) // the gateway's: an answer may repeat a broken From
	if err != nil {
		u.t.Fatal(err)
	}
	return msg, from
}

// final returns the next final response.
func (u *rawUDP) final() *sip.Response {
	u.t.Helper()
	for {
		if res, ok := u.mustRead().(*sip.Response); ok && res.StatusCode >= 200 {
			return res
		}
	}
}

func (u *rawUDP) mustRead() sip.Message {
	u.t.Helper()
	m, _ := u.read()
	return m
}

// exchange sends text to addr and returns the final response.
func (u *rawUDP) exchange(addr, text string) *sip.Response {
	u.t.Helper()
	u.write(addr, text)
	return u.final()
}

// message is a MESSAGE request's text, its Via naming via.
func message(ruri, via, branch, from, callID, ctype, body string) string {
	return fmt.Sprintf("MESSAGE %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=%s\nMax-Forwards: 70\n"+
		"From: <%s>;tag=a1\nTo: <%s>\nCall-ID: %s\nCSeq: 1 MESSAGE\nContent-Type: %s\nContent-Length: %d\n\n%s",
		ruri, via, branch, from, ruri, callID, ctype, len(body), body)
}
