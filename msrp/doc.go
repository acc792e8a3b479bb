// Package msrp is an MSRP (RFC 4975) stack: message model, streaming parser, writer, URIs, chunking and
// reassembly, transactions, connections and session routing. It knows nothing about SIP: the rendezvous
// protocol exchanges Session.LocalPath and the peer's path (SDP a=path), the rest happens here.
//
// An endpoint in ten lines (the offerer calls Connect; the answerer just waits for Bound):
//
//	ep := msrp.NewEndpoint(msrp.Config{CheckFromPath: true, Logger: logger})
//	defer ep.Close()
//	if _, err := ep.Listen("tcp", "0.0.0.0:2855", false); err != nil { return err }
//	ep.SetAdvertise("192.0.2.10", 2855)
//	s := ep.NewSession(handler)              // handler implements msrp.Handler
//	sdpPath := msrp.FormatPath(s.LocalPath()) // goes into our a=path
//	s.SetPeerPath(peerPath)                   // parsed from the peer's a=path with msrp.ParseSDPPath
//	if err := s.Connect(ctx); err != nil { return err } // active side only
//	err := s.Send(&msrp.Outgoing{ContentType: "text/plain", Body: []byte("hi")}, func(r msrp.SendResult) { log.Println(r) })
//
// Incoming requests are routed by the session-id of the first To-Path URI: unknown -> 481, a session
// bound to another connection -> 506, a From-Path that differs from the peer path (Config.CheckFromPath)
// -> 403, unknown methods -> 501, malformed frames -> 400 (or the connection is closed when the frame
// cannot be delimited), among them an IP address URI without a port in To-Path or From-Path (RFC 4975 §6),
// oversize chunks or messages -> 413. REPORTs are never answered.
//
// The lower layers are usable alone: Reader and WriteMessage read and write frames on any stream, ParseURI,
// ParsePath, URI.CheckPort, ParseSDPPath and URI.Equal implement RFC 4975 §6 and the port rule of §8.2.
package msrp
