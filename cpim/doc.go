// Package cpim reads and writes message/cpim documents (RFC 3862) and the Instant Message Disposition
// Notifications carried in them (RFC 5438), as MSRP and RCS peers use them.
//
// Parse accepts both layouts met in practice: the RFC 3862 one with an empty line between the CPIM message
// headers and the encapsulated MIME headers, and the one printed in RFC 4975 §11.4 and RFC 5438 without it.
// CPIM header names are case-sensitive ("From" is not "from"); the MIME header names of the encapsulated
// entity are not. Header values are kept verbatim, escapes included: a processor must not change a CPIM
// document (RFC 3862 §6), so Marshal reproduces what Parse read.
//
// Wrap builds the document a gateway sends towards a CPIM-only peer; NewDeliveryIMDN builds the "delivered" /
// "failed" notification a gateway sends back on the recipient's behalf; IsControl tells chat text from
// control payloads (isComposing, IMDN).
package cpim
