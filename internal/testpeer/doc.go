// Package testpeer holds reusable SIP and MSRP test peers for msrpgw's end-to-end tests and load tools: a
// page-mode Phone (a sipgo user agent that only speaks MESSAGE) and a session-mode Client (a sipgo user agent
// with an MSRP endpoint: INVITE + MSRP SEND). Both listen on ephemeral 127.0.0.1 ports, take a testing.TB and
// release everything through its Cleanup.
//
// Methods that wait (Recv, WaitInvite, WaitBye, ...) fail the test after WaitFor; call them from the test's
// goroutine. Methods named Try* return an error instead and are safe from any goroutine.
package testpeer
