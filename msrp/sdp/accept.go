package sdp

import "strings"

// Match reports whether contentType is acceptable under the accepted list (RFC 4975 §8.6): parameters are
// ignored on both sides, comparison is case-insensitive, and entries "type/*" and "*" are wildcards. An
// empty contentType (a bodiless SEND has none) matches nothing.
func Match(accepted []string, contentType string) bool {
	ct := bare(contentType)
	if ct == "" {
		return false
	}
	for _, a := range accepted {
		if covers(bare(a), ct) {
			return true
		}
	}
	return false
}

// Common returns the entries of ours that the peer's list accepts, keeping our order, for building an
// answer. A wildcard of ours ("text/*", "*") that the peer's list does not cover is replaced by the peer's
// entries it covers, so the answer names types both sides really take. Entries are not repeated.
func Common(ours, peers []string) []string {
	var out []string
	add := func(t string) {
		for _, o := range out {
			if strings.EqualFold(bare(o), bare(t)) {
				return
			}
		}
		out = append(out, t)
	}
	for _, o := range ours {
		if Match(peers, o) {
			add(o)
			continue
		}
		bo := bare(o)
		if !isWildcard(bo) {
			continue
		}
		for _, p := range peers {
			if covers(bo, bare(p)) {
				add(p)
			}
		}
	}
	return out
}

// covers reports whether the accept entry a (without parameters) admits the type ct (without parameters).
func covers(a, ct string) bool {
	switch {
	case a == "*":
		return true
	case strings.HasSuffix(a, "/*"):
		typ, _, _ := strings.Cut(ct, "/")
		return strings.EqualFold(a[:len(a)-2], typ)
	default:
		return strings.EqualFold(a, ct)
	}
}

func isWildcard(a string) bool { return a == "*" || strings.HasSuffix(a, "/*") }

// bare strips the parameters and surrounding blanks from a media type.
func bare(t string) string {
	if i := strings.IndexByte(t, ';'); i >= 0 {
		t = t[:i]
	}
	return strings.TrimSpace(t)
}
