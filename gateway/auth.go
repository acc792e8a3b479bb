package gateway

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/msrpgw/msrpgw/config"
)

// This file answers 401/407 digest challenges to the gateway's own requests with sip.credentials (SPEC §8):
// each challenge once, never in a loop; the challenge's realm picks the credential. A request may meet more
// than one: an outbound proxy's 407 and then the far end's 401 are two, and the third request carries both
// answers. The same challenge again (its credential refused), or more than maxChallenges, is final.

// maxChallenges bounds the challenges one request answers (a proxy or two, and the far end).
const maxChallenges = 3

var (
	// errNoCredential: the challenge names a realm sip.credentials has nothing for.
	errNoCredential = errors.New("no sip.credentials entry for the challenge's realm")
	// errChallengedAgain: the request already answered this challenge, or maxChallenges of them.
	errChallengedAgain = errors.New("challenged again")
)

// challengeID names a challenge: who sent it (401: the far end, 407: a proxy) and its realm.
type challengeID struct {
	code  int
	realm string
}

// challengeAnswer is one challenge a request answered, kept to answer it again on the next request.
type challengeAnswer struct {
	id     challengeID
	chal   *digest.Challenge
	cred   config.Credential
	cnonce string
	nc     int // requests sent with chal's nonce
}

// answered are the challenges one request has answered.
type answered []challengeAnswer

// challengeHeaders returns the header a challenge comes in and the one the answer goes in.
func challengeHeaders(code int) (challenge, answer string) {
	if code == 407 {
		return "Proxy-Authenticate", "Proxy-Authorization"
	}
	return "WWW-Authenticate", "Authorization"
}

// isChallenge reports whether res is a 401/407 carrying a challenge.
func isChallenge(res *sip.Response) bool {
	if res == nil || (res.StatusCode != 401 && res.StatusCode != 407) {
		return false
	}
	h, _ := challengeHeaders(res.StatusCode)
	return res.GetHeader(h) != nil
}

// credentialFor picks the credential for res's challenge: the entry with the challenge's realm, else one
// with an empty realm (any realm).
func (g *Gateway) credentialFor(res *sip.Response) (config.Credential, *digest.Challenge, error) {
	h, _ := challengeHeaders(res.StatusCode)
	hdr := res.GetHeader(h)
	if hdr == nil {
		return config.Credential{}, nil, fmt.Errorf("%d without %s", res.StatusCode, h)
	}
	chal, err := digest.ParseChallenge(hdr.Value())
	if err != nil {
		return config.Credential{}, nil, fmt.Errorf("%s %q: %w", h, hdr.Value(), err)
	}
	var any *config.Credential
	for i, c := range g.cfg.SIP.Credentials {
		if c.Realm == chal.Realm {
			return c, chal, nil
		}
		if c.Realm == "" && any == nil {
			any = &g.cfg.SIP.Credentials[i]
		}
	}
	if any != nil {
		return *any, chal, nil
	}
	return config.Credential{}, nil, fmt.Errorf("%w: realm %q", errNoCredential, chal.Realm)
}

// authorize turns req into its answer to the challenge in res: credentials added (the answers to earlier
// challenges kept), CSeq advanced, Via removed (the next transaction adds its own branch). done holds the
// challenges req has answered; a challenge answered before is not answered again.
func (g *Gateway) authorize(req *sip.Request, res *sip.Response, done *answered) error {
	cred, chal, err := g.credentialFor(res)
	if err != nil {
		return err
	}
	id := challengeID{res.StatusCode, chal.Realm}
	if slices.ContainsFunc(*done, func(a challengeAnswer) bool { return a.id == id }) || len(*done) >= maxChallenges {
		return fmt.Errorf("%w: %d realm %q after %d answered", errChallengedAgain, id.code, id.realm, len(*done))
	}
	// The answers to earlier challenges go again, each computed anew with its nonce counted once more: nc is
	// the number of requests sent with the nonce, and the same nc twice is a replay (RFC 7616 §3.4), which a
	// server checking it refuses.
	all := append(slices.Clone(*done), challengeAnswer{id: id, chal: chal, cred: cred})
	values := make([]string, len(all))
	for i := range all {
		a := &all[i]
		a.nc++
		// The digest uri is the Request-URI as the request line has it, parameters included (RFC 7616 §3.4.6):
		// a server may check that it names the Request-URI, as sip.auth does here (sameURI).
		c, err := digest.Digest(a.chal, digest.Options{Method: string(req.Method), URI: req.Recipient.String(),
			Username: a.cred.Username, Password: a.cred.Password, Cnonce: a.cnonce, Count: a.nc})
		if err != nil {
			return fmt.Errorf("digest for realm %q: %w", a.chal.Realm, err)
		}
		a.cnonce, values[i] = c.Cnonce, c.String()
	}
	*done = all
	for _, h := range []string{"Authorization", "Proxy-Authorization"} {
		for req.RemoveHeader(h) {
		}
	}
	for i, a := range all {
		_, answer := challengeHeaders(a.id.code)
		req.AppendHeader(sip.NewHeader(answer, values[i]))
	}
	if cseq := req.CSeq(); cseq != nil {
		cseq.SeqNo++
	}
	req.RemoveHeader("Via")
	// The credentials add a few hundred bytes: a request that fitted in UDP may not any more (SPEC §4, RFC
	// 3261 §18.1.1). Moved to TCP, it must not be bound to the UDP listener's address (fromListener): sipgo
	// would dial from it.
	if strings.EqualFold(req.Transport(), "UDP") {
		if offUDPIfLarge(req, requestSize(req)); !strings.EqualFold(req.Transport(), "UDP") {
			req.Laddr = sip.Addr{}
		}
	}
	return nil
}
