package testpeer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"

	"github.com/msrpgw/msrpgw/msrp"
)

// ClientSession is one MSRP session of a Client, with the SIP dialog that set it up. It is the msrp.Handler of
// its msrp.Session: SENDs received are answered with the code set by SetReply (200 by default) and queued for
// Recv, and a success REPORT follows the 200 when the SEND asked for one; REPORTs are queued for Report.
type ClientSession struct {
	// MSRP is the session's MSRP side.
	MSRP *msrp.Session
	// CallID is the Call-ID of the INVITE that set the session up.
	CallID string
	// InviteSource is where the gateway's INVITE came from (host:port), when the gateway INVITEd us.
	InviteSource string

	c       *Client
	relay   *Relay                     // the session sits behind it (nil: none)
	uas     *sipgo.DialogServerSession // when the gateway INVITEd us
	uac     *sipgo.DialogClientSession // when we INVITEd the gateway
	inbox   chan *msrp.Incoming
	dropped atomic.Int64 // SENDs that found the inbox full (the test fails at its end)
	reports chan *msrp.Report
	closed  chan error
	reply   atomic.Int32 // code HandleMessage returns (0 = 200)
	report  atomic.Int32 // failure REPORT status sent before answering each SEND (0 = none)
	delay   atomic.Int64 // how long HandleMessage holds each answer, in ns (0 = none)
	bye     chan struct{}
	byeOnce sync.Once
	byeFrom string // where the gateway's BYE came from; set before bye is closed
	recvd   atomic.Int64
}

// HandleMessage implements msrp.Handler.
func (cs *ClientSession) HandleMessage(ms *msrp.Session, m *msrp.Incoming) int {
	cs.recvd.Add(1)
	if code := cs.report.Load(); code != 0 {
		// Reported about a copy: the msrp stack holds a REPORT about the message it is answering until the
		// answer is queued, and this peer is one that reports first, as another stack may.
		about := *m
		if err := ms.Report(&about, int(code), "reported by the test"); err != nil {
			cs.c.fail("failure REPORT %d for %s: %v", code, m.MessageID, err)
		}
	}
	select {
	case cs.inbox <- m:
	default: // Received still counts it; the test fails at its end (newSession)
		cs.dropped.Add(1)
	}
	time.Sleep(time.Duration(cs.delay.Load()))
	if code := cs.reply.Load(); code != 0 && code != 200 {
		return int(code)
	}
	if m.SuccessReport && cs.report.Load() == 0 {
		// About m itself: the msrp stack sends it once the 200 is queued (RFC 4975 §7.1.3).
		// Not when the session ended meanwhile (a test may end or replace it once Recv has m): a peer has
		// nothing to report on then.
		if err := ms.Report(m, 200, "OK"); err != nil && !errors.Is(err, msrp.ErrNotBound) {
			cs.c.fail("success REPORT for %s: %v", m.MessageID, err)
		}
	}
	return 200
}

// SetReplyDelay makes the session hold its answer to each SEND for d after the message reached Recv.
func (cs *ClientSession) SetReplyDelay(d time.Duration) { cs.delay.Store(int64(d)) }

// HandleReport implements msrp.Handler.
func (cs *ClientSession) HandleReport(_ *msrp.Session, r *msrp.Report) {
	select {
	case cs.reports <- r:
	default:
	}
}

// HandleClose implements msrp.Handler.
func (cs *ClientSession) HandleClose(_ *msrp.Session, err error) {
	select {
	case cs.closed <- err:
	default:
	}
}

// SetReportFailure makes the session send a failure REPORT with this status for each SEND before it answers
// the SEND (0: none). The REPORT leaves first, so it is what the sender learns first.
func (cs *ClientSession) SetReportFailure(code int) { cs.report.Store(int32(code)) }

// SetReply sets the MSRP status the session answers SENDs with (Client.SetReply's, 200 by default).
func (cs *ClientSession) SetReply(code int) { cs.reply.Store(int32(code)) }

// Received returns how many SENDs (whole messages) the session has received.
func (cs *ClientSession) Received() int { return int(cs.recvd.Load()) }

// TrySend sends o and waits for its transaction result until ctx ends. Any goroutine may call it.
func (cs *ClientSession) TrySend(ctx context.Context, o *msrp.Outgoing) (msrp.SendResult, error) {
	done := make(chan msrp.SendResult, 1)
	if err := cs.MSRP.Send(o, func(r msrp.SendResult) { done <- r }); err != nil {
		return msrp.SendResult{}, fmt.Errorf("testpeer: SEND: %w", err)
	}
	select {
	case r := <-done:
		return r, nil
	case <-ctx.Done():
		return msrp.SendResult{}, fmt.Errorf("testpeer: no result for SEND: %w", ctx.Err())
	}
}

// Send sends a SEND with the given Content-Type and body and waits for its transaction result; it fails the
// test when the SEND cannot be sent or gets no result within WaitFor.
func (cs *ClientSession) Send(ctype, body string) msrp.SendResult {
	cs.c.t.Helper()
	return cs.SendOut(&msrp.Outgoing{ContentType: ctype, Body: []byte(body)})
}

// SendOut is Send for an arbitrary outgoing message.
func (cs *ClientSession) SendOut(o *msrp.Outgoing) msrp.SendResult {
	cs.c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitFor)
	defer cancel()
	r, err := cs.TrySend(ctx, o)
	if err != nil {
		cs.c.t.Fatal(err)
	}
	return r
}

// TryRecv waits up to d for the next SEND the session receives.
func (cs *ClientSession) TryRecv(d time.Duration) (*msrp.Incoming, bool) { return tryRecv(cs.inbox, d) }

// Recv waits for the next SEND the session receives; it fails the test after WaitFor.
func (cs *ClientSession) Recv() *msrp.Incoming {
	cs.c.t.Helper()
	m, ok := cs.TryRecv(WaitFor)
	if !ok {
		cs.c.t.Fatalf("testpeer: client %s received no SEND within %s", cs.c.URI, WaitFor)
	}
	return m
}

// Report waits for the next REPORT; it fails the test after WaitFor.
func (cs *ClientSession) Report() *msrp.Report {
	cs.c.t.Helper()
	r, ok := tryRecv(cs.reports, WaitFor)
	if !ok {
		cs.c.t.Fatalf("testpeer: client %s received no REPORT within %s", cs.c.URI, WaitFor)
	}
	return r
}

// NoReport fails the test if a REPORT arrives within d.
func (cs *ClientSession) NoReport(d time.Duration) {
	cs.c.t.Helper()
	if r, ok := tryRecv(cs.reports, d); ok {
		cs.c.t.Fatalf("testpeer: client %s received an unexpected REPORT %d %s", cs.c.URI, r.StatusCode, r.Comment)
	}
}

// Inbox is the queue of received SENDs that Recv reads, for a test that waits on several things at once.
func (cs *ClientSession) Inbox() <-chan *msrp.Incoming { return cs.inbox }

// Reports is the queue of received REPORTs that Report reads.
func (cs *ClientSession) Reports() <-chan *msrp.Report { return cs.reports }

// ServerDialog is the dialog of a session the gateway INVITEd us to (nil for one we INVITEd): its
// InviteRequest, or a request of ours inside it (a re-INVITE).
func (cs *ClientSession) ServerDialog() *sipgo.DialogServerSession { return cs.uas }

// ClientDialog is the dialog of a session we INVITEd the gateway to (nil for one it INVITEd us to).
func (cs *ClientSession) ClientDialog() *sipgo.DialogClientSession { return cs.uac }

// TryBye sends BYE on the session's dialog and closes its MSRP side.
func (cs *ClientSession) TryBye(ctx context.Context) error {
	var err error
	switch {
	case cs.uac != nil:
		err = cs.uac.Bye(ctx)
	case cs.uas != nil:
		err = cs.uas.Bye(ctx)
	default:
		err = errors.New("testpeer: session has no dialog")
	}
	cs.MSRP.Close()
	if err != nil {
		return fmt.Errorf("testpeer: BYE: %w", err)
	}
	return nil
}

// Bye is TryBye that fails the test on error.
func (cs *ClientSession) Bye() {
	cs.c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitFor)
	defer cancel()
	if err := cs.TryBye(ctx); err != nil {
		cs.c.t.Fatal(err)
	}
}

// ByeReceived is closed when the peer (the gateway) has sent BYE on this session's dialog.
func (cs *ClientSession) ByeReceived() <-chan struct{} { return cs.bye }

// GotBye reports whether the peer has sent BYE on this session's dialog.
func (cs *ClientSession) GotBye() bool {
	select {
	case <-cs.bye:
		return true
	default:
		return false
	}
}

// WaitBye waits for the peer's BYE; it fails the test after WaitFor.
func (cs *ClientSession) WaitBye() {
	cs.c.t.Helper()
	select {
	case <-cs.bye:
	case <-time.After(WaitFor):
		cs.c.t.Fatalf("testpeer: client %s got no BYE for Call-ID %s within %s", cs.c.URI, cs.CallID, WaitFor)
	}
}

// ByeSource waits for the peer's BYE (WaitBye) and returns where it came from (host:port).
func (cs *ClientSession) ByeSource() string {
	cs.c.t.Helper()
	cs.WaitBye()
	return cs.byeFrom
}

// WaitClosed waits for the MSRP session to close (BYE, connection lost) and returns why; it fails the test
// after WaitFor.
func (cs *ClientSession) WaitClosed() error {
	cs.c.t.Helper()
	select {
	case err := <-cs.closed:
		return err
	case <-cs.bye:
		return errors.New("BYE")
	case <-time.After(WaitFor):
		cs.c.t.Fatalf("testpeer: client %s session %s not closed within %s", cs.c.URI, cs.CallID, WaitFor)
		return nil
	}
}
