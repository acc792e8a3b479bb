package gateway

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/internal/testpeer"
	"github.com/msrpgw/msrpgw/msrp"
	"github.com/msrpgw/msrpgw/msrp/sdp"
)

// This file holds the test harness: a gateway on ephemeral loopback ports and a log of its events. The peers
// the tests talk to it with, page-mode phones and session-mode clients, are internal/testpeer's.

func TestMain(m *testing.M) {
	// sipgo's limits are process-wide: set once, here, as the daemon does in main.
	ConfigureSIPStack(config.Default())
	os.Exit(m.Run())
}

const waitFor = testpeer.WaitFor // how long a test waits for something that should happen

// eventLog records published events.
type eventLog struct {
	mu     sync.Mutex
	events []event.Event
	ch     chan event.Event
}

func newEventLog() *eventLog { return &eventLog{ch: make(chan event.Event, 4096)} }

func (l *eventLog) Publish(e event.Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
	select {
	case l.ch <- e:
	default:
	}
}

// waitKind waits for the next event of kind k.
func (l *eventLog) waitKind(t testing.TB, k event.Kind) event.Event {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case e := <-l.ch:
			if e.Kind == k {
				return e
			}
		case <-deadline:
			t.Fatalf("no %s event within %s", k, waitFor)
		}
	}
}

func (l *eventLog) countWhere(f func(event.Event) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.events {
		if f(e) {
			n++
		}
	}
	return n
}

func (l *eventLog) count(k event.Kind) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.events {
		if e.Kind == k {
			n++
		}
	}
	return n
}

type harness struct {
	t      testing.TB
	gw     *Gateway
	cfg    *config.Config
	events *eventLog
}

// testConfig is the default config on ephemeral loopback ports, with short deadlines.
func testConfig() *config.Config {
	cfg := config.Default()
	cfg.SIP.Listen = []config.Listen{{Network: "udp", Addr: "127.0.0.1:0"}, {Network: "tcp", Addr: "127.0.0.1:0"}}
	cfg.SIP.Contact = "sip:127.0.0.1:0"
	cfg.MSRP.Listen = "msrp://127.0.0.1:0;tcp"
	cfg.Gateway.SetupTimeout = 3 * time.Second
	cfg.Gateway.ShutdownTimeout = 2 * time.Second
	cfg.Gateway.Message.Reply = "accept"
	return cfg
}

func newHarness(t testing.TB, mutate func(*config.Config)) *harness {
	t.Helper()
	return newHarnessWith(t, mutate, Options{})
}

// newHarnessWith is newHarness with opts for the gateway (a Router, a Logger); the events always go to the
// harness's log, and the log to the test's unless opts has a Logger.
func newHarnessWith(t testing.TB, mutate func(*config.Config), opts Options) *harness {
	t.Helper()
	return newHarnessBefore(t, mutate, opts, nil)
}

// newHarnessBefore is newHarnessWith that calls before, when not nil, on the gateway before it starts.
func newHarnessBefore(t testing.TB, mutate func(*config.Config), opts Options, before func(*Gateway)) *harness {
	t.Helper()
	cfg := testConfig()
	if mutate != nil {
		mutate(cfg)
	}
	ev := newEventLog()
	opts.Events = ev
	if opts.Logger == nil {
		opts.Logger = testpeer.Logger(t).With("who", "gateway")
	}
	gw, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	if before != nil {
		before(gw)
	}
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	return &harness{t: t, gw: gw, cfg: cfg, events: ev}
}

func (h *harness) udp() string { return h.gw.SIPAddr("udp") }

// doReq sends a hand-made request through a peer's sipgo client (Phone.SIPClient, Client.SIPClient) and
// returns its final response, waiting at most waitFor.
func doReq(c *sipgo.Client, req *sip.Request) (*sip.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	return c.Do(ctx, req)
}

// inviteByHand INVITEs the page-mode user toURI through the gateway from client's URI, with body of type ctype
// (the SDP offer, or a multipart/mixed body holding it), ACKs the 200 and returns the path of the gateway's
// answer. The client's UA does not know the dialog: the gateway's BYE gets 481, and the test's MSRP session
// stays open after it.
func inviteByHand(t *testing.T, h *harness, client *testpeer.Client, toURI, ctype string, body []byte) []msrp.URI {
	t.Helper()
	req, err := testpeer.NewRequest(sip.INVITE, client.URI, toURI, ctype, body)
	if err != nil {
		t.Fatal(err)
	}
	ans, _ := inviteAck(t, h, client, req)
	path, err := msrp.ParseSDPPath(strings.Join(ans.Path, " "))
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// sdpPath is the a=path of the SDP body, parsed (the peer path to give a test client's MSRP session).
func sdpPath(t *testing.T, body []byte) []msrp.URI {
	t.Helper()
	m, err := sdp.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	path, err := msrp.ParseSDPPath(strings.Join(m.Path, " "))
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// inviteAck sends req, an INVITE, to the gateway's UDP listener from client's dialog UA, ACKs its 200 and
// returns the gateway's SDP answer and the dialog.
func inviteAck(t *testing.T, h *harness, client *testpeer.Client, req *sip.Request) (*sdp.Media, *sipgo.DialogClientSession) {
	t.Helper()
	ans, dlg := inviteAnswered(t, h, client, req)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := dlg.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	return ans, dlg
}

// inviteAnswered sends req, an INVITE, to the gateway's UDP listener from client's dialog UA and waits for its
// 200, not ACKed yet; it returns the SDP the 200 carries (an answer, or the offer to a late-offer INVITE) and
// the dialog.
func inviteAnswered(t *testing.T, h *harness, client *testpeer.Client, req *sip.Request) (*sdp.Media, *sipgo.DialogClientSession) {
	t.Helper()
	req.SetDestination(h.udp())
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	dlg, err := client.DialogUA().WriteInvite(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := dlg.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		t.Fatal(err)
	}
	m, err := sdp.Parse(dlg.InviteResponse.Body())
	if err != nil {
		t.Fatalf("no SDP in the 200 to the INVITE: %v", err)
	}
	return m, dlg
}

// ackWith ACKs dlg's 200 with answer in the ACK's body: the answer to the gateway's offer in a late-offer
// INVITE's 200 (SPEC §3.2 step 2).
func ackWith(t *testing.T, dlg *sipgo.DialogClientSession, answer *sdp.Media) {
	t.Helper()
	ack := sip.NewRequest(sip.ACK, dlg.InviteResponse.Contact().Address)
	ack.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	ack.SetBody(answer.Marshal(3, 1))
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := dlg.WriteAck(ctx, ack); err != nil {
		t.Fatal(err)
	}
}
