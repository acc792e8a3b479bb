package gateway

import (
	"fmt"
	"strconv"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/cpim"
	"github.com/msrpgw/msrpgw/event"
)

// This file sends notification MESSAGEs to page-mode users: setup-failed and per-message failures (SPEC §5).

// notify renders a notification body (gateway.setup_failed or gateway.failure_notify) and queues it to coords
// (the page-mode user is To / RURI).
func (g *Gateway) notify(c Coords, n *config.Notify, req *sip.Request, key string, o outcome, msg []byte) {
	t, err := notifyTemplate(n)
	if err != nil {
		g.log.Error("notification template", "err", err)
		return
	}
	v := requestVars{req: req, extra: map[string]string{
		"code": strconv.Itoa(o.Code), "reason": o.Reason, "key": key, "excerpt": excerpt(msg),
	}}
	text, err := t.Render(v)
	if err != nil {
		g.log.Warn("notification not sent: template", "err", err, "key", key)
		return
	}
	// Labelled UTF-8, which excerpt makes it: text/plain without a charset is US-ASCII (RFC 2046 §4.1.2).
	j := &sipJob{coords: c, contentType: "text/plain;charset=UTF-8", body: []byte(text), arrived: time.Now(), notice: true, key: key, callID: callID(req)}
	if err := g.out.enqueue(j); err != nil { // a queue bound (sipside.go)
		g.log.Warn("notification not sent", "why", err.Error(), "to", c.RURI, "key", key, "call_id", j.callID)
		g.publish(event.Event{Kind: event.MessageDropped, Key: key, Direction: event.ToSIP, CallID: j.callID, Reason: "notification not sent: " + boundName(err)})
	}
}

// notifyFailure tells the sender of an already-answered MESSAGE that it failed.
func (g *Gateway) notifyFailure(pm *pageMessage, o outcome) {
	fn := &g.cfg.Gateway.FailureNotify
	if !fn.Notify {
		return
	}
	g.notify(pm.notifyTo(), fn, pm.req, pm.key, o, pm.content())
}

// notifyTemplate is a notification's body template: compiled by config.Validate, or here for a configuration
// that did not go through it or was changed since (a program's, a test's).
func notifyTemplate(n *config.Notify) (*config.Template, error) {
	if t := n.BodyTemplate(); t != nil && t.String() == n.Body {
		return t, nil
	}
	return config.CompileTemplate(n.Body, config.NotifyVars)
}

// notifyHeader is a header a notification body reads with $hdr(), which every MESSAGE must carry: a MESSAGE
// without it is refused up front (SPEC §6) rather than its failure going untold (SPEC §5).
type notifyHeader struct{ name, key string }

// notifyHeaders lists the headers of the notification templates that are on.
func notifyHeaders(cfg *config.Config) ([]notifyHeader, error) {
	var hs []notifyHeader
	for _, n := range []struct {
		key string
		n   *config.Notify
	}{{"gateway.setup_failed.body", &cfg.Gateway.SetupFailed}, {"gateway.failure_notify.body", &cfg.Gateway.FailureNotify}} {
		if !n.n.Notify {
			continue
		}
		t, err := notifyTemplate(n.n)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n.key, err)
		}
		for _, h := range t.Headers() {
			hs = append(hs, notifyHeader{h, n.key})
		}
	}
	return hs, nil
}

// missingNotifyHeader says which header a notification template needs that req lacks; "" when none.
func (g *Gateway) missingNotifyHeader(req *sip.Request) string {
	for _, h := range g.notifyHeaders {
		if _, ok := (requestVars{req: req}).Header(h.name); !ok {
			return "missing header " + h.name + " needed by " + h.key
		}
	}
	return ""
}

// content is what a MESSAGE says, for $excerpt: its body or, for CPIM, the content it wraps, whose CPIM
// headers alone would fill the excerpt.
func (pm *pageMessage) content() []byte { return messageContent(pm.contentType, pm.body) }

// requestContent is content for a MESSAGE request (nil for none): the one that set up a session whose setup
// failed, for the $excerpt of the setup-failed notification. A control payload (an IMDN, bare or wrapped in
// CPIM) has none: it never reaches the page-mode user as chat text (SPEC §4), as notifyFailure, which sends
// nothing for one, keeps it.
func requestContent(req *sip.Request) []byte {
	if req == nil {
		return nil
	}
	var ctype string
	if ct := req.ContentType(); ct != nil {
		ctype = ct.Value()
	}
	if (&pageMessage{contentType: ctype, body: req.Body()}).control() {
		return nil
	}
	return messageContent(ctype, req.Body())
}

func messageContent(contentType string, body []byte) []byte {
	if mediaType(contentType) == ctypeCPIM {
		if m, err := cpim.Parse(body); err == nil {
			if b, err := m.DecodedBody(); err == nil {
				return b
			}
		}
	}
	return body
}
