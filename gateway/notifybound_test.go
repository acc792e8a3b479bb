package gateway

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/internal/testpeer"
)

// Notification MESSAGEs are bounded as the MESSAGEs made from SENDs are: a page-mode user who does not answer
// them (each then waits Timer F, one at a time per destination) while its messages keep failing must not make
// them pile up without end. One over limits.max_queued_per_session for its destination, or over
// max_queued_total, is not sent, and that is logged and counted.
func TestNotificationsBounded(t *testing.T) {
	logs := newCapturedLog()
	h := newHarnessWith(t, func(c *config.Config) {
		c.Limits.MaxQueuedPerSession = 2
	}, Options{Logger: slog.New(logs)})
	alice := testpeer.NewPhone(t, "nb-alice")
	alice.SetAnswer(0) // never answers: the gateway's MESSAGEs to her wait
	bob := testpeer.NewClient(t, "nb-bob")
	bob.SetAnswer(486, "")

	const n = 6
	for i := 0; i < n; i++ {
		if res := alice.Send(h.udp(), bob.URI, "text/plain", "hello"); res.StatusCode != 202 {
			t.Fatalf("MESSAGE %d answered %d, want 202", i, res.StatusCode)
		}
		if e := h.events.waitKind(t, event.SetupFailed); e.Code != 486 {
			t.Fatalf("setup_failed %+v", e)
		}
	}
	// One in flight, at most max_queued_per_session waiting behind it.
	if p := h.gw.out.pending(); p > 3 {
		t.Fatalf("%d notifications queued for one page-mode user that does not answer (max_queued_per_session 2)", p)
	}
	if l := logs.wait(t, "notification not sent", map[string]string{"why": "", "to": alice.URI}); !strings.Contains(l.attrs["why"], "limits.max_queued_per_session 2 reached") {
		t.Fatalf("notification not sent because %q", l.attrs["why"])
	}
	// Counted under the bound's name alone: the reason is a metric label, one value per bound.
	if e := h.events.waitKind(t, event.MessageDropped); e.Reason != "notification not sent: limits.max_queued_per_session" {
		t.Fatalf("message_dropped %+v", e)
	}
}
