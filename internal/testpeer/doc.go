// Package testpeer holds reusable SIP and MSRP test peers for msrpgw's tests (the gateway package's and the
// end-to-end ones of cmd/msrpgw): a page-mode Phone (a sipgo user agent that only speaks MESSAGE) and a
// session-mode Client (a sipgo user agent with an MSRP endpoint: INVITE + MSRP SEND). Both listen on ephemeral
// loopback ports, take a testing.TB and release everything through its Cleanup. PhoneConfig and ClientConfig
// change what a test needs changed (source address, TLS, how MESSAGEs are answered, the SDP); NewUA and
// NewRequest are for peers and requests the types here do not cover.
//
// Methods that wait (Recv, WaitInvite, WaitBye, ...) fail the test after WaitFor; call them from the test's
// goroutine. Methods named Try* return an error instead and are safe from any goroutine.
package testpeer
