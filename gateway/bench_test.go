package gateway

import (
	"context"
	"strconv"
	"sync"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/internal/testpeer"
	"github.com/msrpgw/msrpgw/msrp"
	"github.com/msrpgw/msrpgw/msrp/sdp"
)

// Benchmarks of the gateway's hot paths. Run by hand or with `make bench`; never timed in tests.
//
//	go test -run='^$' -bench=. -benchmem ./gateway

func benchRequest(b *testing.B, method sip.RequestMethod, from, to string) *sip.Request {
	var ruri, f sip.Uri
	if err := sip.ParseUri(to, &ruri); err != nil {
		b.Fatal(err)
	}
	if err := sip.ParseUri(from, &f); err != nil {
		b.Fatal(err)
	}
	req := sip.NewRequest(method, ruri)
	fh := &sip.FromHeader{Address: f, Params: sip.NewParams()}
	fh.Params.Add("tag", "a73kszlfl")
	req.AppendHeader(fh)
	req.AppendHeader(&sip.ToHeader{Address: ruri, Params: sip.NewParams()})
	req.AppendHeader(sip.NewHeader("Call-ID", "f81d4fae-7dec-11d0-a765-00a0c91e6bf6"))
	req.AppendHeader(sip.NewHeader("Content-Type", "text/plain"))
	return req
}

// BenchmarkRoute renders the default correlation key and MESSAGE-side coordinates from a parsed request,
// as every MESSAGE and INVITE does.
func BenchmarkRoute(b *testing.B) {
	r, err := NewTemplateRouter(config.Default())
	if err != nil {
		b.Fatal(err)
	}
	msg := benchRequest(b, sip.MESSAGE, "sip:alice@127.0.0.1:5070", "sip:bob@127.0.0.1:5080")
	inv := benchRequest(b, sip.INVITE, "sip:bob@127.0.0.1:5080", "sip:alice@127.0.0.1:5070")
	b.Run("message", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.RouteMessage(msg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("invite", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.RouteInvite(inv); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSDPOfferAnswer is the SDP work of one session-first setup: parse the offer, pick the common
// types and the setup role, write the answer.
func BenchmarkSDPOfferAnswer(b *testing.B) {
	offer := (&sdp.Media{Host: "127.0.0.1", Port: 2856, Path: []string{"msrp://127.0.0.1:2856/kd83jdh3abcds8a7d6f5;tcp"},
		AcceptTypes: []string{"message/cpim", "text/plain"}, AcceptWrappedTypes: []string{"text/plain", "message/imdn+xml"},
		Setup: "actpass"}).Marshal(1, 1)
	cfg := config.Default()
	b.ReportAllocs()
	b.SetBytes(int64(len(offer)))
	for b.Loop() {
		m, err := sdp.Parse(offer)
		if err != nil {
			b.Fatal(err)
		}
		setup, _ := sdp.AnswerSetup(m.Setup)
		ans := &sdp.Media{Host: "127.0.0.1", Port: 2855, Path: []string{"msrp://127.0.0.1:2855/s8a7d6f5kd83jdh3abcd;tcp"},
			AcceptTypes:        sdp.Common(cfg.Gateway.Answer.AcceptTypes, m.AcceptTypes),
			AcceptWrappedTypes: sdp.Common(cfg.Gateway.Answer.AcceptWrappedTypes, m.AcceptWrappedTypes),
			MaxSize:            cfg.Gateway.MaxMessageSize, Setup: setup}
		_ = ans.Marshal(2, 1)
	}
}

// benchChat is a real gateway (reply: wait) on loopback with one up session-first chat between a phone and
// an MSRP client.
func benchChat(b *testing.B) (*harness, *testpeer.Phone, *testpeer.Client, *testpeer.ClientSession) {
	b.Helper()
	h := newHarness(b, func(c *config.Config) { c.Gateway.Message.Reply = "wait" })
	alice := testpeer.NewPhone(b, "alice")
	bob := testpeer.NewClient(b, "bob")
	cs := bob.Call(h.udp(), alice.URI, "actpass")
	return h, alice, bob, cs
}

// BenchmarkMessageToSend: one MESSAGE in, one SEND out, one at a time. ns/op is the whole round trip
// (phone's MESSAGE → gateway → SEND → client's 200 → gateway's 200 to the phone) with all three parties in
// this process; allocs/op counts all three too.
func BenchmarkMessageToSend(b *testing.B) {
	h, alice, bob, cs := benchChat(b)
	b.ReportAllocs()
	for b.Loop() {
		if res := alice.Send(h.udp(), bob.URI, "text/plain", "hello bob"); res.StatusCode != 200 {
			b.Fatalf("MESSAGE answered %d", res.StatusCode)
		}
		cs.Recv()
	}
}

// BenchmarkMessageToSendParallel: MESSAGEs from several goroutines at once (several transactions in
// flight), throughput rather than round trip.
func BenchmarkMessageToSendParallel(b *testing.B) {
	h, alice, bob, cs := benchChat(b)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-cs.Inbox():
			case <-stop:
				return
			}
		}
	}()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			res, err := alice.TrySend(ctx, h.udp(), bob.URI, "text/plain", "hello bob")
			cancel()
			if err != nil || res.StatusCode != 200 {
				b.Errorf("MESSAGE: %v %v", res, err)
				return
			}
		}
	})
	close(stop)
	wg.Wait()
}

// BenchmarkSendToMessage: one SEND in, one MESSAGE out, one at a time: the client's SEND gets its 200 at
// once (SPEC §5), the op ends when the phone has the MESSAGE.
func BenchmarkSendToMessage(b *testing.B) {
	_, alice, _, cs := benchChat(b)
	b.ReportAllocs()
	for b.Loop() {
		if r := cs.Send("text/plain", "hello alice"); r.StatusCode != 200 {
			b.Fatalf("SEND: %+v", r)
		}
		alice.Recv()
	}
}

// BenchmarkSendToMessagePipelined: SENDs written without waiting (32 in flight), the gateway turning them
// into MESSAGEs one outstanding at a time per destination, as it must (RFC 3428 §8).
func BenchmarkSendToMessagePipelined(b *testing.B) {
	_, alice, _, cs := benchChat(b)
	const window = 32
	sem := make(chan struct{}, window)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		sem <- struct{}{}
		body := []byte("hello alice " + strconv.Itoa(i))
		i++
		if err := cs.MSRP.Send(&msrp.Outgoing{ContentType: "text/plain", Body: body}, func(r msrp.SendResult) {
			if r.StatusCode != 200 {
				b.Errorf("SEND: %+v", r)
			}
		}); err != nil {
			b.Fatal(err)
		}
		go func() { alice.Recv(); <-sem }()
	}
	for range window {
		sem <- struct{}{}
	}
}
