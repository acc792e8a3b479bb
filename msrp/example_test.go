package msrp_test

import (
	"context"
	"fmt"

	"github.com/msrpgw/msrpgw/msrp"
)

// printer prints each message and accepts it.
type printer struct{ got chan struct{} }

func (p printer) HandleMessage(s *msrp.Session, m *msrp.Incoming) int {
	fmt.Printf("%s: %s\n", m.ContentType, m.Body)
	close(p.got)
	return 200
}
func (printer) HandleReport(*msrp.Session, *msrp.Report) {}
func (printer) HandleClose(*msrp.Session, error)         {}

// Two endpoints on loopback: alice (the SDP offerer) connects to bob and sends him a message.
func ExampleEndpoint() {
	alice, bob := msrp.NewEndpoint(msrp.Config{}), msrp.NewEndpoint(msrp.Config{CheckFromPath: true})
	defer alice.Close()
	defer bob.Close()
	if _, err := bob.Listen("tcp", "127.0.0.1:0", false); err != nil {
		panic(err)
	}
	alice.SetAdvertise("127.0.0.1", 9) // alice never accepts here: she is the active side

	got := make(chan struct{})
	a, b := alice.NewSession(printer{}), bob.NewSession(printer{got: got})
	a.SetPeerPath(b.LocalPath()) // what the SDP exchange carries in a=path
	b.SetPeerPath(a.LocalPath())
	if err := a.Connect(context.Background()); err != nil {
		panic(err)
	}
	done := make(chan msrp.SendResult, 1)
	if err := a.Send(&msrp.Outgoing{ContentType: "text/plain", Body: []byte("Hey Bob, are you there?")},
		func(r msrp.SendResult) { done <- r }); err != nil {
		panic(err)
	}
	<-got
	fmt.Println("status", (<-done).StatusCode)
	// Output:
	// text/plain: Hey Bob, are you there?
	// status 200
}

// A client behind an MSRP relay (RFC 4976): it AUTHs to the relay (answering its Digest challenge), advertises the path the relay granted, and
// its session talks through the relay's connection; it needs no listener of its own.
func ExampleEndpoint_Relay() {
	client := msrp.NewEndpoint(msrp.Config{})
	defer client.Close()
	relayURI, err := msrp.ParseURI("msrps://127.0.0.1:2855;tcp") // the relay, e.g. Kamailio's msrp module; TLS, as AUTH wants
	if err != nil {
		panic(err)
	}
	relay, err := client.Relay(context.Background(), relayURI, &msrp.Credentials{Username: "alice", Password: "secret"})
	if err != nil {
		fmt.Println("AUTH:", err)
		return
	}
	defer relay.Close()
	s := relay.NewSession(printer{got: make(chan struct{})})
	fmt.Println("a=path:", msrp.FormatPath(s.LocalPath())) // the relay's Use-Path, then our URI
	// s.SetPeerPath(the peer's a=path from its SDP); s.Connect when we are the active party; s.Send(...)
}
