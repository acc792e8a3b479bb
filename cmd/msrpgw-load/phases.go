package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/msrpgw/msrpgw/msrp"
)

// maxShards bounds the sender goroutines per flow. Each shard owns a fixed set of sessions and sends their
// messages one after another, so a session's send order is its wire order.
const maxShards = 4

// setupAll brings every session up, SetupConcurrency at a time.
func (l *loader) setupAll(ctx context.Context) {
	sem := make(chan struct{}, l.cfg.SetupConcurrency)
	var wg sync.WaitGroup
	for i := 0; i < l.cfg.Sessions && ctx.Err() == nil; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			t0 := l.now()
			l.setups.began(t0)
			err := l.setupOne(ctx, i)
			l.setups.done(l.now()-t0, l.now(), err)
			if err != nil {
				l.cfg.Logger.Warn("setup failed", "session", i, "err", err)
			}
		}()
	}
	wg.Wait()
}

func (l *loader) setupOne(ctx context.Context, i int) error {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.SetupTimeout)
	defer cancel()
	if l.cfg.Setup == "invite" {
		c, err := l.sess.invite(ctx, i, l.clientURI(clientUser(i)), l.phoneURI(phoneUser(i)))
		if err != nil {
			return err
		}
		l.mu.Lock()
		l.chats[i] = c
		l.mu.Unlock()
		return nil
	}
	// MESSAGE first: the gateway INVITEs the client; up once the warm-up message came out on the session.
	res := make(chan int, 1)
	body := stamp{flow: warmUp, session: i, sentNs: int64(l.now())}.format()
	if err := l.page.send(ctx, l.phoneURI(phoneUser(i)), l.clientURI(clientUser(i)), body, func(code int) { res <- code }); err != nil {
		return fmt.Errorf("warm-up MESSAGE: %w", err)
	}
	// Up needs both: the warm-up came out on MSRP, and its MESSAGE got a 2xx final response.
	select {
	case code := <-res:
		if code < 200 || code >= 300 {
			return fmt.Errorf("warm-up MESSAGE answered %d", code)
		}
	case <-ctx.Done():
		return fmt.Errorf("warm-up MESSAGE unanswered: %w", ctx.Err())
	}
	select {
	case <-l.warmed[i]:
	case <-ctx.Done():
		return fmt.Errorf("warm-up message never came out on MSRP: %w", ctx.Err())
	}
	return nil
}

// sendAll runs every flow's senders until Duration passes or each session sent Count messages.
//
// Open loop, Arrival even spaces a flow's messages evenly at Rate, the sessions in turn: message c of session
// i of S goes (c·S + i)/Rate after the flow's start (evenAt), so the shards interleave instead of sending K
// messages at once every K/Rate (which the tool did before: bursts that cost the gateway latency and saved it
// wake-ups), and every session gets Rate/S however many sessions its shard owns; a second flow is offset by
// half a period. Arrival poisson gives each shard exponential gaps at its share of Rate (its sessions' part
// of all), so the flow is the sum of independent Poisson senders: a Poisson process at Rate, as many
// independent users make. (Each shard used to send at Rate/K whatever it owned: with S not a multiple of K,
// the sessions of the larger shards got less, and a -count run slowed down once the smaller shards were done.)
func (l *loader) sendAll(ctx context.Context) {
	start := time.Now()
	deadline := start.Add(l.cfg.Duration)
	shards := min(l.cfg.Sessions, maxShards)
	flows := l.cfg.flows()
	var wg sync.WaitGroup
	for fi, f := range flows {
		var sem chan struct{}
		if l.cfg.Window > 0 {
			sem = make(chan struct{}, l.cfg.Window)
		}
		t0 := start.Add(shardOffset(0, fi, len(flows), l.cfg.Rate))
		for k := range shards {
			var own []int
			for i := k; i < l.cfg.Sessions; i += shards {
				own = append(own, i)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				l.shard(ctx, f, own, l.cfg.Rate*float64(len(own))/float64(l.cfg.Sessions), t0, sem, deadline)
			}()
		}
	}
	wg.Wait()
}

// evenAt is when message c of session i (of sessions) is due at an even rate, after its flow's start.
func evenAt(i int, c int64, sessions int, rate float64) time.Duration {
	return time.Duration(float64(c*int64(sessions)+int64(i)) / rate * float64(time.Second))
}

// shardOffset is when shard k of flow fi (of flows) starts sending, after the first: k periods of the flow's
// rate, plus fi/flows of a period.
func shardOffset(k, fi, flows int, rate float64) time.Duration {
	if rate <= 0 {
		return 0
	}
	return time.Duration((float64(k) + float64(fi)/float64(flows)) / rate * float64(time.Second))
}

// shard sends flow f's messages for its sessions, round robin: open loop at rate (its share of the flow's)
// from t0, the flow's start (each request on schedule, never waiting for the previous one's answer), and/or
// closed loop through sem.
func (l *loader) shard(ctx context.Context, f flowID, own []int, rate float64, t0 time.Time, sem chan struct{}, deadline time.Time) {
	seq := make([]int64, len(own))
	var at time.Duration // the next message's send time, from t0
	if rate > 0 {
		at = evenAt(own[0], 0, l.cfg.Sessions, l.cfg.Rate) // the shard's first, poisson too
	}
	j := 0
	stop := time.NewTimer(time.Until(deadline))
	defer stop.Stop()
	wait := time.NewTimer(time.Hour) // until the next message is due (Reset before each use)
	defer wait.Stop()
	for {
		if ctx.Err() != nil || !time.Now().Before(deadline) {
			return
		}
		if l.cfg.Count > 0 {
			found := false
			for range own {
				if seq[j] < l.cfg.Count {
					found = true
					break
				}
				j = (j + 1) % len(own)
			}
			if !found {
				return
			}
		}
		if rate > 0 {
			if l.cfg.Arrival != "poisson" {
				at = evenAt(own[j], seq[j], l.cfg.Sessions, l.cfg.Rate)
			}
			if d := time.Until(t0.Add(at)); d > 0 {
				// Not a plain sleep: at a low rate the next message may be far off, and an interrupt must not
				// wait for it.
				wait.Reset(min(d, time.Until(deadline)))
				select {
				case <-wait.C:
				case <-ctx.Done():
					return
				}
				continue
			}
		}
		if sem != nil {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			case <-stop.C:
				return
			}
		}
		i := own[j]
		var due time.Time // when the message was due: open loop only
		if rate > 0 {
			due = t0.Add(at)
		}
		l.sendOne(ctx, f, i, seq[j], sem, due)
		seq[j]++
		if rate > 0 && l.cfg.Arrival == "poisson" {
			at += time.Duration(rand.ExpFloat64() / rate * float64(time.Second))
		}
		j = (j + 1) % len(own)
	}
}

// sendOne writes message seq of session i in flow f, due at due (zero: whenever, closed loop). The window slot
// (if any) is released with its final response.
func (l *loader) sendOne(ctx context.Context, f flowID, i int, seq int64, sem chan struct{}, due time.Time) {
	fs := l.flows[f]
	release := func() {
		if sem != nil {
			<-sem
		}
	}
	t := l.now()
	body := stamp{flow: f, session: i, seq: seq, sentNs: int64(t)}.format()
	var err error
	switch f {
	case msgToMSRP:
		err = l.page.send(ctx, l.phoneURI(phoneUser(i)), l.clientURI(clientUser(i)), body, func(code int) {
			// A transaction ended by the run's end (Ctrl-C) has no final response; it was not the gateway's error.
			if code > 0 || ctx.Err() == nil {
				fs.final(i, seq, code)
			}
			release()
		})
	case msrpToMsg:
		l.mu.Lock()
		c := l.chats[i]
		l.mu.Unlock()
		if c == nil {
			err = errors.New("session not set up")
			break
		}
		err = c.ms.Send(&msrp.Outgoing{ContentType: "text/plain", Body: []byte(body)}, func(r msrp.SendResult) {
			code := r.StatusCode
			if r.Err != nil {
				code = 0
			}
			fs.final(i, seq, code)
			release()
		})
	}
	if err != nil {
		fs.sendError()
		release()
		return
	}
	fs.sent(i, seq, t)
	if !due.IsZero() {
		fs.late(t - due.Sub(l.start))
	}
}

// drain waits, at most Drain, until every flow has its responses and deliveries.
func (l *loader) drain(ctx context.Context) {
	deadline := time.Now().Add(l.cfg.Drain)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		all := true
		for _, f := range l.flows {
			all = all && f.settled()
		}
		if all {
			// Listen on for lateWindow (within the drain): a copy that comes after everything was accounted for
			// is still a duplicate.
			if late := time.Until(deadline); late > 0 {
				select {
				case <-time.After(min(late, lateWindow)):
				case <-ctx.Done():
				}
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lateWindow is how long the drain goes on listening once every message has its answer and a delivery.
const lateWindow = time.Second

// teardown BYEs every session the run set up.
func (l *loader) teardown(ctx context.Context) {
	l.mu.Lock()
	chats := append([]*chat(nil), l.chats...)
	l.mu.Unlock()
	sem := make(chan struct{}, l.cfg.SetupConcurrency)
	var wg sync.WaitGroup
	for _, c := range chats {
		if c == nil || c.ended.Load() {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			// Not ctx's cancellation: an interrupted run still ends its sessions, each BYE bounded on its own.
			bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.cfg.SetupTimeout)
			defer cancel()
			err := l.sess.bye(bctx, c)
			if err != nil {
				l.cfg.Logger.Warn("BYE failed", "session", c.idx, "err", err)
			}
			l.setups.bye(err)
		}()
	}
	wg.Wait()
}

// churnLoop sets up and tears down extra sessions at Churn per second while the load runs.
func (l *loader) churnLoop(ctx context.Context) {
	sem := make(chan struct{}, l.cfg.SetupConcurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	t0 := time.Now()
	for k := 0; ; k++ {
		next := t0.Add(time.Duration(float64(k) / l.cfg.Churn * float64(time.Second)))
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(next)):
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			sctx, cancel := context.WithTimeout(context.Background(), l.cfg.SetupTimeout)
			defer cancel()
			t := l.now()
			l.churn.began(t)
			c, err := l.sess.invite(sctx, -1, l.clientURI(fmt.Sprintf("lkc%d", k)), l.phoneURI(fmt.Sprintf("lkp%d", k)))
			l.churn.done(l.now()-t, l.now(), err)
			if err == nil {
				l.churn.bye(l.sess.bye(sctx, c))
			}
		}()
	}
}

// progress writes one line a second.
func (l *loader) progress(ctx context.Context) {
	if l.cfg.Progress == nil {
		return
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last := make(map[flowID]int64)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		line := fmt.Sprintf("msrpgw-load %4.0fs", l.now().Seconds())
		for _, f := range []flowID{msgToMSRP, msrpToMsg} {
			fs := l.flows[f]
			if fs == nil {
				continue
			}
			sent, del, dup, reord, pending := fs.snapshot()
			line += fmt.Sprintf(" | %s sent %d (+%d/s) delivered %d dup %d reord %d awaiting %d", f, sent, sent-last[f], del, dup, reord, pending)
			last[f] = sent
		}
		su := l.setups.report()
		line += fmt.Sprintf(" | sessions up %d failed %d", su.Count, su.Failures)
		if l.cfg.Churn > 0 {
			cr := l.churn.report()
			line += fmt.Sprintf(" | churn %d failed %d", cr.Count, cr.Failures)
		}
		if l.cfg.PID > 0 {
			if s, err := readProc(l.cfg.PID); err == nil {
				line += fmt.Sprintf(" | gw rss %d KiB fds %d", s.rssKiB, s.fds)
			}
		}
		fmt.Fprintln(l.cfg.Progress, line)
	}
}
