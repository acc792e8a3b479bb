// Package sipsyntax holds the pieces of the RFC 3261 grammar (§25.1) that both the config's checks and the
// gateway's request checks need, so each rule is written once.
package sipsyntax

import "strings"

// IsToken reports whether s is a non-empty RFC 3261 token: alphanumerics and -.!%*_+`'~ (the syntax of a header
// field name, a media type's type and subtype, a parameter name).
func IsToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-.!%*_+`'~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
