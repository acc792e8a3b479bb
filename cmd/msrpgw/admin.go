package main

import (
	"github.com/msrpgw/msrpgw/admin"
	"github.com/msrpgw/msrpgw/gateway"
)

// adminView shows the gateway through the admin package's interface.
type adminView struct{ gw *gateway.Gateway }

func toAdmin(in gateway.SessionInfo) admin.Session {
	return admin.Session{
		Key: in.Key, State: in.State, Origin: in.Origin,
		MsgSideFrom: in.Coords.From, MsgSideTo: in.Coords.To, MsgSideRURI: in.Coords.RURI,
		MSRPSessionID: in.MSRPSessionID, MSRPPeerPath: in.MSRPPeerPath, CallID: in.CallID,
		Created: in.Created, LastMessage: in.LastMessage, LastSend: in.LastSend, Queued: in.Queued,
		MessagesToMSRP: in.MessagesToMSRP, MessagesToSIP: in.MessagesToSIP,
	}
}

func (v adminView) Sessions() []admin.Session {
	list := v.gw.Sessions()
	out := make([]admin.Session, len(list))
	for i, s := range list {
		out[i] = toAdmin(s)
	}
	return out
}

func (v adminView) Session(key string) (admin.Session, bool) {
	s, ok := v.gw.Session(key)
	return toAdmin(s), ok
}

func (v adminView) EndSession(key string) bool { return v.gw.EndSession(key) }
func (v adminView) Drain()                     { v.gw.Drain() }
func (v adminView) Ready() bool                { return v.gw.Ready() }

func (v adminView) Stats() admin.Stats {
	st := v.gw.Stats()
	return admin.Stats{SessionsByState: st.SessionsByState, Queued: st.Queued, MSRPConns: st.MSRPConns}
}
