package gateway

import (
	"bufio"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/internal/testpeer"
)

// ringingProxy is a SIP proxy on raw TCP sockets: it answers the first INVITE 180 Ringing and then loses that
// connection (a NAT's, a load balancer's), the callee still ringing behind it; it reports every CANCEL that
// comes on a later connection, answering it 200.
type ringingProxy struct {
	ln      net.Listener
	closed  chan struct{}
	invite  *sip.Request // set before closed closes
	cancels chan *sip.Request
}

func newRingingProxy(t *testing.T) *ringingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &ringingProxy{ln: ln, closed: make(chan struct{}), cancels: make(chan *sip.Request, 4)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		first := true
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			go p.serve(c, first)
			first = false
		}
	}()
	return p
}

func (p *ringingProxy) serve(c net.Conn, first bool) {
	r := bufio.NewReader(c)
	for {
		req, err := readSIPRequest(r)
		if err != nil {
			return
		}
		if first && req.IsInvite() {
			io.WriteString(c, sip.NewResponseFromRequest(req, 180, "Ringing", nil).String())
			time.Sleep(50 * time.Millisecond)
			c.Close()
			p.invite = req
			close(p.closed)
			return
		}
		if req.IsCancel() {
			io.WriteString(c, sip.NewResponseFromRequest(req, 200, "OK", nil).String())
			p.cancels <- req
		}
	}
}

// A message-first INVITE over TCP that had a provisional response when its connection closed is CANCELled:
// the branch it made at the proxy (the callee ringing) is still there, and the setup that failed at once
// (503) must not leave it ringing, to be answered into a dialog nobody ACKs. Before the close failed the
// setup at once, the CANCEL of setup_timeout (SPEC §3.1 step 6) ended it.
func TestInviteConnClosedAfterRingingCancelled(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Gateway.Message.Reply = config.ReplyWait
		c.Gateway.SetupTimeout = 2 * time.Second
	})
	proxy := newRingingProxy(t)
	alice := testpeer.NewPhone(t, "alice")
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	res, err := alice.TrySend(ctx, h.udp(), "sip:bob@"+proxy.ln.Addr().String()+";transport=tcp", "text/plain", "hello")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("MESSAGE answered %d %s", res.StatusCode, res.Reason)
	<-proxy.closed
	select {
	case req := <-proxy.cancels:
		// RFC 3261 §9.1: the CANCEL matches the INVITE's top Via branch and CSeq number.
		b, _ := req.Via().Params.Get("branch")
		ib, _ := proxy.invite.Via().Params.Get("branch")
		if b != ib || req.CSeq().SeqNo != proxy.invite.CSeq().SeqNo || req.CSeq().MethodName != sip.CANCEL {
			t.Fatalf("CANCEL branch %q CSeq %s, INVITE branch %q CSeq %s", b, req.CSeq().Value(), ib, proxy.invite.CSeq().Value())
		}
	case <-time.After(h.cfg.Gateway.SetupTimeout + 3*time.Second):
		t.Fatal("the ringing INVITE was never CANCELled")
	}
}
