// Package sdp reads and writes the MSRP media description of an SDP body (RFC 4975 §8, RFC 6135 a=setup,
// RFC 6714 a=msrp-cema) on top of github.com/pion/sdp/v3.
//
// pion/sdp does the SDP grammar and is strict about line order and line endings; this package first
// normalises what real peers send (LF-only lines, a missing final CRLF, "a=accept-types: x" with a space,
// trailing blanks, lines in a slightly wrong order, media it has no use for) and then picks the first usable
// m=message line. It also carries the small pieces of MSRP negotiation that are pure functions of SDP:
// content-type matching (Match, Common), the RFC 6135 connection roles (AnswerSetup, OffererActive) and the
// extraction of the SDP part from a multipart SIP body (SplitBody).
//
// Parsing the a=path URIs is the msrp package's job; this package keeps them verbatim.
package sdp
