// Package certs makes self-signed certificate pairs for tests and first runs (`msrpgw gen-cert`), and
// computes and checks the SDP a=fingerprint of a certificate (RFC 4572, used by MSRP over TLS with
// self-signed certificates, RFC 4975 §14.4).
package certs
