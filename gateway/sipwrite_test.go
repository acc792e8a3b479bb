package gateway

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/msrpgw/msrpgw/config"
)

// A peer that sends requests over TCP and never reads their answers must not hold the gateway's writes to it,
// and the limits.max_sip_handlers slots of the requests whose answers they carry, for as long as it keeps
// sending: a write it does not take for limits.sip_conn_idle_timeout closes its connection, and every other
// source is served again.
func TestSIPPeerNotReadingLosesItsHandlers(t *testing.T) {
	const idle = time.Second
	h := newHarness(t, func(c *config.Config) {
		c.Limits.MaxSIPHandlers = 4
		c.Limits.SIPConnIdleTimeout = idle
	})
	gw := h.gw.SIPAddr("tcp")

	// The slow peer: a tiny receive window, large answers (its long Call-ID comes back in each), requests in
	// batches until the gateway's writes to it are stuck (however large the kernel's buffers are), then a CRLF
	// keep-alive now and then, so that it is never idle.
	slow := dialFrom(t, "127.0.0.2", gw)
	slow.(*net.TCPConn).SetReadBuffer(4096)
	local := slow.LocalAddr().String()
	long := strings.Repeat("x", 16<<10)
	stop, more, sent := make(chan struct{}), make(chan bool), make(chan error, 1)
	defer close(stop)
	go func() {
	batches:
		for i := 0; ; {
			select {
			case <-stop:
				return
			case batch := <-more:
				if !batch {
					break batches
				}
				var err error
				for end := i + 50; i < end && err == nil; i++ {
					_, err = fmt.Fprintf(slow, "OPTIONS sip:%s SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=z9hG4bK-slow%d\r\nMax-Forwards: 70\r\n"+
						"From: <sip:slow@%s>;tag=s\r\nTo: <sip:%s>\r\nCall-ID: %s-%d\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
						gw, local, i, local, gw, long, i)
				}
				sent <- err
			}
		}
		for {
			select {
			case <-stop:
				return
			case <-time.After(idle / 4):
			}
			if _, err := slow.Write([]byte("\r\n")); err != nil {
				return
			}
		}
	}()

	// Another source gets 503 while the slots are stuck, then 200 once the slow peer's connection is closed.
	// It asks once each batch has been sent and handled: a 503 then comes from answers not taken, not from
	// handlers merely busy with the batch.
	var got string
	for deadline := time.Now().Add(10 * idle); time.Now().Before(deadline); {
		more <- true
		if err := <-sent; err != nil {
			t.Fatalf("the slow peer's connection closed before a probe saw its handlers stuck: %v", err)
		}
		time.Sleep(idle / 20)
		c := dialFrom(t, "127.0.0.3", gw)
		got = options(t, c, gw)
		c.Close()
		if strings.HasPrefix(got, "SIP/2.0 503") {
			break
		}
	}
	more <- false
	if !strings.HasPrefix(got, "SIP/2.0 503") {
		t.Fatalf("the slow peer never took every handler: the test did not set up what it checks (last answer %q)", got)
	}
	for deadline := time.Now().Add(waitFor); ; time.Sleep(idle / 4) {
		c := dialFrom(t, "127.0.0.3", gw)
		got = options(t, c, gw)
		c.Close()
		if strings.HasPrefix(got, "SIP/2.0 200") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a peer not reading its answers still holds every SIP handler after %v (sip_conn_idle_timeout %v): %q", waitFor, idle, got)
		}
	}
}
