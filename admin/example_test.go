package admin_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/msrpgw/msrpgw/admin"
	"github.com/msrpgw/msrpgw/event"
)

// Example shows how the daemon wires the admin surface: metrics and webhooks are event sinks the gateway
// publishes to, the handler serves admin.listen, and shutdown closes the server before the dispatcher.
func Example() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	var gw admin.Gateway = nopGateway{} // the real gateway in cmd/msrpgw

	m := admin.NewMetrics(gw.Stats)
	hooks := []admin.Webhook{{URL: "http://127.0.0.1:9000/hook", Events: []string{"setup_failed"}}}
	if err := admin.ValidateWebhooks(hooks); err != nil {
		log.Error("bad config", "err", err)
		return
	}
	d := admin.NewDispatcher(hooks, m, admin.DispatcherOptions{Logger: log})
	sink := event.Sinks{m, d} // give this to the gateway

	ln, err := net.Listen("tcp", "127.0.0.1:0") // admin.listen
	if err != nil {
		log.Error("admin listen", "err", err)
		return
	}
	srv := &http.Server{Handler: admin.NewHandler(gw, m, admin.Options{Logger: log}), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin server", "err", err)
		}
	}()

	sink.Publish(event.Event{Kind: event.SessionStarted, Origin: "message"})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	_ = d.Close(ctx)
}

type nopGateway struct{}

func (nopGateway) Sessions() []admin.Session            { return nil }
func (nopGateway) Session(string) (admin.Session, bool) { return admin.Session{}, false }
func (nopGateway) EndSession(string) bool               { return false }
func (nopGateway) Drain()                               {}
func (nopGateway) Ready() bool                          { return true }
func (nopGateway) Stats() admin.Stats                   { return admin.Stats{} }
