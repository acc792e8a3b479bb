package main

import (
	"fmt"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// The stamps of a TCP stream are found in stream order wherever the reads cut it, each once; stamps of the
// other flow, a notification quoting a stamp (not at the start of its body) and responses are not.
func TestArrivalOrderTCPStream(t *testing.T) {
	var stream strings.Builder
	var want []stamp
	for i, seq := range []int64{0, 1, 3, 2, 10, 123456789} {
		st := stamp{flow: msrpToMsg, session: i % 2, seq: seq, sentNs: 42}
		want = append(want, st)
		body := st.format()
		fmt.Fprintf(&stream, "MESSAGE sip:lp%d@127.0.0.1 SIP/2.0\r\nContent-Length: %d\r\n\r\n%s", st.session, len(body), body)
		other := stamp{flow: msgToMSRP, session: 0, seq: seq}.format()
		fmt.Fprintf(&stream, "MESSAGE sip:lp0@127.0.0.1 SIP/2.0\r\nContent-Length: %d\r\n\r\n%s", len(other), other)
		note := "Message not delivered (408 Request Timeout): " + body
		fmt.Fprintf(&stream, "MESSAGE sip:lp0@127.0.0.1 SIP/2.0\r\nContent-Length: %d\r\n\r\n%s", len(note), note)
		stream.WriteString("SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n")
	}
	b := []byte(stream.String())
	props := sip.TransportReadProps{Transport: "TCP", RemoteAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5060}}
	for _, size := range []int{1, 2, 3, 7, 16, 50, 61, 100, len(b)} {
		var got []stamp
		a := newArrivalOrder(func(s stamp) { got = append(got, s) })
		for i := 0; i < len(b); i += size {
			chunk := b[i:min(i+size, len(b))]
			if out, err := a.filter(props, chunk); err != nil || string(out) != string(chunk) {
				t.Fatalf("filter changed the data or failed: %v", err)
			}
		}
		for i := range got {
			got[i].sentNs = 42 // not read: only session and sequence count
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("reads of %d bytes: stamps %v, want %v", size, got, want)
		}
	}
}

// A gateway that writes one session's MESSAGEs in order, one datagram every 200 µs, without waiting for each
// answer (one without msrpgw's one MESSAGE outstanding per destination), delivers them in order: the phones
// count none reordered, although sipgo runs each request's handler on a goroutine of its own.
func TestPipelinedMessagesNotReordered(t *testing.T) {
	l := &loader{cfg: Config{GW: "127.0.0.1:9", Transport: "udp"}, start: time.Now(), flows: map[flowID]*flowStats{msrpToMsg: newFlowStats(1)}, wire: newWireClock()}
	if err := l.startPage(); err != nil {
		t.Fatal(err)
	}
	defer l.page.close()
	gw, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	to, _ := net.ResolveUDPAddr("udp", l.page.addr)
	const n = 1000
	go func() { // the phones' answers
		buf := make([]byte, 4096)
		for {
			if _, _, err := gw.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	// 5,000/s, one session: the MSRP→MESSAGE target's order of magnitude.
	tick := time.NewTicker(200 * time.Microsecond)
	defer tick.Stop()
	for seq := 0; seq < n; seq++ {
		<-tick.C
		fs := l.flows[msrpToMsg]
		fs.sent(0, int64(seq), l.now())
		body := stamp{flow: msrpToMsg, session: 0, seq: int64(seq), sentNs: int64(l.now())}.format()
		msg := fmt.Sprintf("MESSAGE sip:lp0@%s SIP/2.0\r\n"+
			"Via: SIP/2.0/UDP %s;branch=z9hG4bK-rev-%d\r\n"+
			"Max-Forwards: 70\r\n"+
			"From: <sip:lc0@127.0.0.1:9>;tag=gw%d\r\n"+
			"To: <sip:lp0@%s>\r\n"+
			"Call-ID: rev-%d@127.0.0.1\r\n"+
			"CSeq: 1 MESSAGE\r\n"+
			"Content-Type: text/plain\r\n"+
			"Content-Length: %d\r\n\r\n%s", l.page.addr, gw.LocalAddr(), seq, seq, l.page.addr, seq, len(body), body)
		if _, err := gw.WriteTo([]byte(msg), to); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if r := l.flows[msrpToMsg].report(); r.Delivered+r.Foreign >= n {
			break
		}
	}
	r := l.flows[msrpToMsg].report()
	if r.Delivered != n || r.Reordered != 0 {
		t.Errorf("%d MESSAGEs written in send order, one datagram after another: delivered %d, reordered %d; want %d, 0",
			n, r.Delivered, r.Reordered, n)
	}
}
