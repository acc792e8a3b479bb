// Package gateway is a SIP MESSAGE ⇄ MSRP instant-messaging gateway: a back-to-back user agent that binds
// page-mode MESSAGEs (RFC 3428) to MSRP chat sessions (RFC 4975), in both directions.
//
// A Gateway is built from a config.Config and started with Start; Shutdown drains it. Which gateway session a
// request belongs to is decided by a Router: by default the config's templates (the OpenSIPS variables $fu,
// $tu, $ru, …), or any Go function (see the example). The files follow what happens to a message:
//
//	udpintake.go MESSAGEs taken straight from the transport, in arrival order (over UDP: no sipgo transaction)
//	message.go   a page-mode MESSAGE: checked, routed, queued, sent as a SEND, answered (SPEC §3.1, §5)
//	recent.go    answers to recent MESSAGEs, BYEs and INVITEs: idempotency, and retransmissions answered alike
//	setup.go     the MSRP side of a MESSAGE-first session: INVITE, answer, connection, setup-failed
//	invite.go    an INVITE from the session-mode side, re-INVITE, ACK, BYE (SPEC §3.2)
//	msrpside.go  a SEND from the session-mode side: answered, turned into a MESSAGE, reported back
//	sipside.go   generated MESSAGEs, one outstanding per destination
//	udpclient.go their client transaction over UDP (RFC 3261 §17.1.2), responses taken from the listener
//	workers.go   long-lived goroutines for handlers and send loops (no stack growth per request)
//	mapping.go   the status tables of SPEC §5, both directions
//	deadline.go  the one timer of a SEND: a stalled peer, or a relay's REPORT that never came
//	end.go       ending sessions: BYE / CANCEL, failing and reporting what was queued
//	session.go   the session and its timers; table.go the session table
package gateway
