package gateway_test

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/gateway"
)

// A Go program supplies its own routing instead of the templates, as the reference's script can: here every
// chat is keyed by a conversation header, and MESSAGEs without one are refused.
func Example_customRouting() {
	cfg := config.Default()
	types := cfg.Gateway.Message.AcceptTypes
	router := gateway.RouterFuncs{
		Message: func(req *sip.Request) (gateway.Route, error) {
			h := req.GetHeader("Conversation-ID")
			if h == nil {
				return gateway.Route{}, &gateway.Refusal{Code: 403, Reason: "Forbidden", Warning: "no Conversation-ID"}
			}
			return gateway.Route{Key: h.Value(), AcceptTypes: types}, nil
		},
		Invite: func(req *sip.Request) (gateway.Route, error) {
			h := req.GetHeader("Conversation-ID")
			if h == nil {
				return gateway.Route{}, &gateway.Refusal{Code: 488, Reason: "Not Acceptable Here", Warning: "no Conversation-ID"}
			}
			from, to := req.From().Address, req.To().Address
			return gateway.Route{
				Key: h.Value(), AcceptTypes: types,
				From: from.String(), To: to.String(), RURI: to.String(),
			}, nil
		},
	}
	gw, err := gateway.New(cfg, gateway.Options{Router: router, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = gw // gw.Start() listens; gw.Shutdown(ctx) drains.
	fmt.Println("gateway built with a custom router")
	// Output: gateway built with a custom router
}
