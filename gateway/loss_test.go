package gateway

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/internal/testpeer"
	"github.com/msrpgw/msrpgw/msrp"
)

// This file is the loss test of the delivery issue: messages both ways over 50 sessions at once, with random
// peer failures injected (clients answering SENDs with errors, phones answering 4xx/5xx, MSRP connections
// dropped mid-run). Afterwards every message accepted is accounted for exactly once, as delivered or
// failed-and-reported, in the gateway's events and in what the peers saw: nothing lost silently, nothing
// duplicated, nothing reported delivered that did not arrive.
//
// The default run sends 1,000 messages each way; with MSRPGW_SOAK=1 (the Makefile's soak target) it sends
// the 10,000 each way.

const soakEnv = "MSRPGW_SOAK"

// lossLane is one session's pair of peers and what they saw.
type lossLane struct {
	i        int
	alice    *testpeer.Phone
	bob      *testpeer.Client
	sendErr  int  // bob answers every SEND with this (0: 200)
	phoneErr int  // alice answers every MESSAGE with this (0: 200)
	drop     bool // bob's MSRP connection is dropped half-way

	mu  sync.Mutex
	cur *testpeer.ClientSession

	acceptedToMSRP, ambiguousToMSRP []string // 202-answered MESSAGE bodies; MESSAGEs with no answer
	acceptedToSIP, ambiguousToSIP   []string // 200-answered SEND bodies; SENDs whose result was lost
	sendIDs                         map[string]string
}

func (l *lossLane) current() *testpeer.ClientSession {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur
}

// lossSeen is what all peers received, shared by the drainers.
type lossSeen struct {
	mu            sync.Mutex
	atClients     map[string]int // SEND bodies received by a client that answered 200
	atClientsErr  map[string]int // ... by a client that answered an error
	atPhones      map[string]int // MESSAGE bodies received by a phone that answered 200
	atPhonesErr   map[string]int
	notifications map[string]int // excerpts of failure notifications
	setupFailed   int
	reports       map[string]int // Message-IDs of failure REPORTs
}

func TestLossAccounting(t *testing.T) {
	noLeftoverGoroutines(t)
	const sessions = 50
	perWay := 1000
	if os.Getenv(soakEnv) != "" {
		perWay = 10000
	}
	per := perWay / sessions
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 4))
	t.Logf("%d messages each way over %d sessions, seed %d", per*sessions, sessions, seed)

	h := newHarness(t, func(c *config.Config) {
		c.Gateway.Message.Reply = "accept"
	})
	seen := &lossSeen{atClients: map[string]int{}, atClientsErr: map[string]int{}, atPhones: map[string]int{},
		atPhonesErr: map[string]int{}, notifications: map[string]int{}, reports: map[string]int{}}
	stop := make(chan struct{})
	var helpers sync.WaitGroup // drainers and INVITE watchers

	lanes := make([]*lossLane, sessions)
	sendErrs, phoneErrs := []int{403, 413, 415, 481}, []int{404, 486, 500, 503}
	for i := range lanes {
		l := &lossLane{i: i, alice: testpeer.NewPhone(t, fmt.Sprintf("loss-alice%02d", i)), bob: testpeer.NewClient(t, fmt.Sprintf("loss-bob%02d", i)), sendIDs: map[string]string{}}
		switch r := rng.IntN(100); {
		case r < 10:
			l.sendErr = sendErrs[rng.IntN(len(sendErrs))]
			l.bob.SetReply(l.sendErr) // from the first SEND of every session on
		case r < 20:
			l.phoneErr = phoneErrs[rng.IntN(len(phoneErrs))]
			l.alice.SetAnswer(l.phoneErr)
		case r < 26:
			l.drop = true
			l.bob.SetAnswer(200, "active") // bob dials: closing his session closes his connection
		}
		lanes[i] = l
		helpers.Add(2)
		go l.watchInvites(seen, stop, &helpers)
		go l.drainPhone(seen, stop, &helpers)
	}

	var senders sync.WaitGroup
	for _, l := range lanes {
		senders.Add(2)
		go func() { defer senders.Done(); l.sendMessages(t, h, per) }()
		go func() { defer senders.Done(); l.sendSENDs(per) }()
	}
	senders.Wait()

	// Wait until the events account for every accepted message (and at most the ambiguous ones besides).
	var accToMSRP, ambToMSRP, accToSIP, ambToSIP int
	for _, l := range lanes {
		accToMSRP += len(l.acceptedToMSRP)
		ambToMSRP += len(l.ambiguousToMSRP)
		accToSIP += len(l.acceptedToSIP)
		ambToSIP += len(l.ambiguousToSIP)
	}
	deadline := time.Now().Add(waitFor)
	var a accounting
	for {
		a = h.events.accounting()
		if a.total(event.ToMSRP) >= accToMSRP && a.total(event.ToSIP) >= accToSIP && h.gw.out.pending() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("accepted %d to MSRP, %d to SIP; accounted %d, %d", accToMSRP, accToSIP, a.total(event.ToMSRP), a.total(event.ToSIP))
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // the last notifications and REPORTs reach the drainers
	close(stop)
	helpers.Wait()
	a = h.events.accounting()
	t.Logf("to MSRP: %d accepted (+%d ambiguous), %d delivered, %d failed; to SIP: %d accepted (+%d ambiguous), %d delivered, %d failed",
		accToMSRP, ambToMSRP, a.delivered[event.ToMSRP], a.failed[event.ToMSRP], accToSIP, ambToSIP, a.delivered[event.ToSIP], a.failed[event.ToSIP])

	// Events: each accepted message once, delivered or failed (a message whose answer was lost may or may
	// not have been accepted).
	if n := a.total(event.ToMSRP); n < accToMSRP || n > accToMSRP+ambToMSRP {
		t.Errorf("to MSRP: %d accounted for %d accepted (+%d ambiguous)", n, accToMSRP, ambToMSRP)
	}
	if n := a.total(event.ToSIP); n < accToSIP || n > accToSIP+ambToSIP {
		t.Errorf("to SIP: %d accounted for %d accepted (+%d ambiguous)", n, accToSIP, ambToSIP)
	}
	seen.mu.Lock()
	defer seen.mu.Unlock()
	// No duplicates anywhere.
	for what, m := range map[string]map[string]int{"client": seen.atClients, "client (refusing)": seen.atClientsErr,
		"phone": seen.atPhones, "phone (refusing)": seen.atPhonesErr, "notification": seen.notifications, "REPORT": seen.reports} {
		for k, n := range m {
			if n > 1 {
				t.Errorf("%s got %q %d times", what, k, n)
			}
		}
	}
	// Nothing reported delivered that did not arrive (and was accepted by its receiver).
	if a.delivered[event.ToMSRP] > len(seen.atClients) {
		t.Errorf("%d reported delivered to MSRP, %d arrived", a.delivered[event.ToMSRP], len(seen.atClients))
	}
	if a.delivered[event.ToSIP] > len(seen.atPhones) {
		t.Errorf("%d reported delivered to SIP, %d arrived", a.delivered[event.ToSIP], len(seen.atPhones))
	}
	// Every accepted message arrived or its sender was told, and each failure was reported once.
	if seen.setupFailed > 0 {
		t.Errorf("%d setup-failed notifications: a reconnect failed", seen.setupFailed)
	}
	if a.failed[event.ToMSRP] != len(seen.notifications) {
		t.Errorf("%d failed to MSRP, %d failure notifications", a.failed[event.ToMSRP], len(seen.notifications))
	}
	var lostToMSRP, lostToSIP, bothToMSRP int
	for _, l := range lanes {
		for _, b := range l.acceptedToMSRP {
			arrived, told := seen.atClients[b] > 0, seen.notifications[b] > 0
			if !arrived && !told {
				lostToMSRP++
				t.Errorf("lane %d: MESSAGE %q accepted, neither delivered nor reported failed", l.i, b)
			}
			if arrived && told {
				bothToMSRP++ // arrived, but its confirmation was lost with the connection: reported failed
				if !l.drop {
					t.Errorf("lane %d: %q arrived and was reported failed, on a lane with no dropped connection", l.i, b)
				}
			}
		}
		for _, b := range l.acceptedToSIP {
			if seen.atPhones[b] == 0 && seen.reports[l.sendIDs[b]] == 0 {
				lostToSIP++
				t.Errorf("lane %d: SEND %q accepted, neither delivered nor reported failed", l.i, b)
			}
		}
	}
	t.Logf("lost: %d to MSRP, %d to SIP; arrived and reported failed (dropped connections): %d", lostToMSRP, lostToSIP, bothToMSRP)
}

// watchInvites takes each session the gateway sets up with bob (a new one after a drop), and drains it.
func (l *lossLane) watchInvites(seen *lossSeen, stop chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	for {
		select {
		case cs := <-l.bob.Invites():
			l.mu.Lock()
			l.cur = cs
			l.mu.Unlock()
			wg.Add(1)
			go l.drainSession(cs, seen, stop, wg)
		case <-stop:
			return
		}
	}
}

func (l *lossLane) drainSession(cs *testpeer.ClientSession, seen *lossSeen, stop chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	for {
		select {
		case m := <-cs.Inbox():
			seen.mu.Lock()
			if l.sendErr == 0 {
				seen.atClients[string(m.Body)]++
			} else {
				seen.atClientsErr[string(m.Body)]++
			}
			seen.mu.Unlock()
		case r := <-cs.Reports():
			if r.StatusCode != 200 {
				seen.mu.Lock()
				seen.reports[r.MessageID]++
				seen.mu.Unlock()
			}
		case <-stop:
			return
		}
	}
}

func (l *lossLane) drainPhone(seen *lossSeen, stop chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	const notice = "Message not delivered ("
	for {
		select {
		case req := <-l.alice.Inbox():
			body := string(req.Body())
			seen.mu.Lock()
			switch {
			case strings.HasPrefix(body, notice):
				_, excerpt, _ := strings.Cut(body, "): ")
				seen.notifications[excerpt]++
			case strings.HasPrefix(body, "Failed to establish session"):
				seen.setupFailed++
			case l.phoneErr == 0:
				seen.atPhones[body]++
			default:
				seen.atPhonesErr[body]++
			}
			seen.mu.Unlock()
		case <-stop:
			return
		}
	}
}

// sendMessages sends per MESSAGEs one after the other; on a drop lane bob's connection goes half-way.
func (l *lossLane) sendMessages(t *testing.T, h *harness, per int) {
	for seq := 0; seq < per; seq++ {
		if l.drop && seq == per/2 {
			if cs := l.current(); cs != nil {
				cs.MSRP.Close()
			}
		}
		body := fmt.Sprintf("m%02d-%05d", l.i, seq)
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		res, err := l.alice.TrySend(ctx, h.udp(), l.bob.URI, "text/plain", body)
		cancel()
		switch {
		case err != nil:
			l.ambiguousToMSRP = append(l.ambiguousToMSRP, body)
		case res.StatusCode == 202:
			l.acceptedToMSRP = append(l.acceptedToMSRP, body)
		default:
			t.Errorf("lane %d: MESSAGE %s answered %d %s", l.i, body, res.StatusCode, res.Reason)
		}
	}
}

// sendSENDs sends per SENDs on bob's current session, each after the previous one's result.
func (l *lossLane) sendSENDs(per int) {
	for seq := 0; seq < per; seq++ {
		body := fmt.Sprintf("s%02d-%05d", l.i, seq)
		deadline := time.Now().Add(waitFor)
		for {
			cs := l.current()
			done := make(chan msrp.SendResult, 1)
			if cs != nil {
				if err := cs.MSRP.Send(&msrp.Outgoing{ContentType: "text/plain", Body: []byte(body)}, func(r msrp.SendResult) { done <- r }); err == nil {
					r := <-done
					l.mu.Lock()
					l.sendIDs[body] = r.MessageID
					l.mu.Unlock()
					if r.StatusCode == 200 {
						l.acceptedToSIP = append(l.acceptedToSIP, body)
						break
					}
					if r.Err != nil {
						l.ambiguousToSIP = append(l.ambiguousToSIP, body) // it may have got through
						break
					}
				}
			}
			if time.Now().After(deadline) {
				break // not sent: the session never came (back) up; the MESSAGE side fails the test then
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}
