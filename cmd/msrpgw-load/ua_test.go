package main

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// The phones' first MESSAGE goes out of their listening socket as soon as their UA exists (the warm-up
// MESSAGEs of -setup message). sipgo must know that socket by then; before newSIPUA waited for it, sipgo
// tried to bind a second socket to the same address ("failed to request connection ... address already
// in use") for the requests that won the race.
func TestFirstMessageLeavesFromTheListener(t *testing.T) {
	sink, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	for i := range 20 {
		p, err := newPageSide(sink.LocalAddr().String(), "udp", func(*sip.Request) int { return 200 }, newWireClock(), nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		done := make(chan int, 1)
		err = p.send(ctx, p.uri(phoneUser(i), "udp"), "sip:lc0@"+sink.LocalAddr().String(), "hello", func(code int) { done <- code })
		if err == nil {
			// Out of the listening socket: the datagram's source is the phones' address.
			buf := make([]byte, 4096)
			sink.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, from, rerr := sink.ReadFrom(buf)
			if rerr != nil || from.String() != p.addr {
				t.Errorf("attempt %d: datagram from %v (%v), want from the phones' %s", i, from, rerr, p.addr)
			}
		}
		cancel()
		if err == nil {
			<-done // the transaction gave up with ctx
		}
		p.close()
		if err != nil {
			t.Fatalf("attempt %d: first MESSAGE: %v", i, err)
		}
	}
}
