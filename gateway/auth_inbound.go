package gateway

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

// This file authenticates inbound requests with HTTP Digest (RFC 3261 §22, sip.auth) for deployments with
// no proxy in front: a MESSAGE, or an INVITE that is not in a dialog, without valid credentials of a user of
// sip.auth.users_file gets 401 with a challenge. A nonce is a timestamp signed with a key made at start, so
// issuing one costs no memory; a nonce is remembered only once credentials on it were accepted, with the
// highest nc seen on it (nonceUses), so that the same Authorization cannot be used again (RFC 7616 §3.3). The
// digest uri must be the request's Request-URI (RFC 7616 §3.4.6), or the credentials of one request would do
// for another to a different address.

// nonceLifetime is how long a nonce is accepted; an older one gets a new challenge with stale=true, which
// clients answer without asking their user again.
const nonceLifetime = 5 * time.Minute

// maxNonceUses bounds the nonces remembered at once: each needed valid credentials, and a client uses one
// for nonceLifetime, so this is that many authenticated clients every five minutes. At the bound the nonce
// first remembered is forgotten, and with it every nonce issued no later: they count as expired (a stale
// challenge, which clients answer without asking their user), never as unused.
const maxNonceUses = 65536

// errBadCredentials is wrapped by every reason an Authorization header is not accepted.
var errBadCredentials = errors.New("digest credentials not accepted")

// errNonceReused is wrapped when the credentials are right but their nonce and nc were accepted before.
var errNonceReused = errors.New("nonce count not above the last one accepted on this nonce")

// inboundAuth checks Digest credentials against the users file.
type inboundAuth struct {
	realm    string
	ha1      map[string]string // username -> hex MD5(username:realm:password)
	key      []byte            // signs nonces
	lifetime time.Duration
	now      func() time.Time
	uses     nonceUses
}

// nonceUses remembers the nonces credentials were accepted on, with the highest nc, until they expire.
type nonceUses struct {
	mu    sync.Mutex
	nc    map[string]int // nonce -> highest nc accepted (0 without qop: then a nonce is good once)
	order []nonceUse     // in the order first accepted, which is about the order issued
	floor time.Time      // nonces issued no later, and not in nc, were forgotten at the bound
	max   int
}

type nonceUse struct {
	nonce  string
	issued time.Time
}

// use records nc on nonce, issued at issued, or says why it cannot be: nc is not above the last one
// accepted, or the nonce was forgotten at the bound (stale).
func (u *nonceUses) use(nonce string, issued time.Time, nc int, now time.Time, lifetime time.Duration) (stale bool, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for len(u.order) > 0 && now.Sub(u.order[0].issued) > lifetime {
		delete(u.nc, u.order[0].nonce)
		u.order = u.order[1:]
	}
	last, seen := u.nc[nonce]
	switch {
	case seen && nc <= last: // stale: a client that reuses nonces without nc asks for a new one, not its user
		return true, fmt.Errorf("%w: nc %d, last %d", errNonceReused, nc, last)
	case seen:
		u.nc[nonce] = nc
		return false, nil
	case !issued.After(u.floor):
		return true, fmt.Errorf("%w: nonce forgotten (over %d nonces in use)", errBadCredentials, u.max)
	}
	if len(u.order) >= u.max {
		old := u.order[0]
		delete(u.nc, old.nonce)
		u.order = u.order[1:]
		if old.issued.After(u.floor) {
			u.floor = old.issued
		}
		if !issued.After(u.floor) {
			return true, fmt.Errorf("%w: nonce forgotten (over %d nonces in use)", errBadCredentials, u.max)
		}
	}
	if u.nc == nil {
		u.nc = make(map[string]int)
	}
	u.nc[nonce] = nc
	u.order = append(u.order, nonceUse{nonce, issued})
	return false, nil
}

// newInboundAuth loads sip.auth; nil when realm is empty (no authentication).
func newInboundAuth(realm, usersFile string) (*inboundAuth, error) {
	if realm == "" {
		return nil, nil
	}
	data, err := os.ReadFile(usersFile)
	if err != nil {
		return nil, fmt.Errorf("sip.auth.users_file: %w", err)
	}
	users, err := parseUsers(data, realm)
	if err != nil {
		return nil, fmt.Errorf("sip.auth.users_file %s: %w", usersFile, err)
	}
	a := &inboundAuth{realm: realm, ha1: users, key: make([]byte, 32), lifetime: nonceLifetime, now: time.Now,
		uses: nonceUses{max: maxNonceUses}}
	if _, err := rand.Read(a.key); err != nil {
		return nil, err
	}
	return a, nil
}

// parseUsers reads a users file: one user a line, `username:password` or `username:realm:HA1` (HA1 being
// the 32 hex digits of MD5(username:realm:password), as htdigest and kamailio's subscriber table hold it);
// blank lines and lines starting with # are skipped. A password may contain ':' but not start a line with
// the realm followed by 32 hex digits.
func parseUsers(data []byte, realm string) (map[string]string, error) {
	users := make(map[string]string)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		user, rest, ok := strings.Cut(line, ":")
		if !ok || user == "" || rest == "" {
			return nil, fmt.Errorf("line %d: want username:password or username:realm:HA1", n)
		}
		if _, dup := users[user]; dup {
			return nil, fmt.Errorf("line %d: user %q listed twice", n, user)
		}
		if r, h, ok := strings.Cut(rest, ":"); ok && isHA1(h) {
			if r != realm {
				return nil, fmt.Errorf("line %d: HA1 of user %q is for realm %q, but sip.auth.realm is %q", n, user, r, realm)
			}
			users[user] = strings.ToLower(h)
			continue
		}
		sum := md5.Sum([]byte(user + ":" + realm + ":" + rest))
		users[user] = hex.EncodeToString(sum[:])
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(users) == 0 {
		return nil, errors.New("no users in it")
	}
	return users, nil
}

func isHA1(s string) bool {
	if len(s) != 32 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// nonce returns a fresh nonce: the time and its signature.
func (a *inboundAuth) nonce() string {
	var b [8 + 16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(a.now().UnixNano()))
	copy(b[8:], a.sign(b[:8]))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (a *inboundAuth) sign(ts []byte) []byte {
	m := hmac.New(sha256.New, a.key)
	m.Write(ts)
	return m.Sum(nil)[:16]
}

// checkNonce reports whether n is ours, when it was issued and whether it is still fresh.
func (a *inboundAuth) checkNonce(n string) (ours bool, issued time.Time, fresh bool) {
	b, err := base64.RawURLEncoding.DecodeString(n)
	if err != nil || len(b) != 24 || !hmac.Equal(b[8:], a.sign(b[:8])) {
		return false, time.Time{}, false
	}
	issued = time.Unix(0, int64(binary.BigEndian.Uint64(b[:8])))
	age := a.now().Sub(issued)
	return true, issued, age >= 0 && age <= a.lifetime
}

// challenge is the WWW-Authenticate value of a 401.
func (a *inboundAuth) challenge(stale bool) string {
	c := digest.Challenge{Realm: a.realm, Nonce: a.nonce(), Algorithm: "MD5", QOP: []string{"auth"}, Stale: stale}
	return c.String()
}

// verify checks req's Authorization. stale says the credentials were right but the nonce too old.
func (a *inboundAuth) verify(req *sip.Request) (user string, stale bool, err error) {
	hdr := req.GetHeader("Authorization")
	if hdr == nil {
		return "", false, fmt.Errorf("%w: no Authorization header", errBadCredentials)
	}
	cred, err := digest.ParseCredentials(hdr.Value())
	if err != nil {
		return "", false, fmt.Errorf("%w: %v", errBadCredentials, err)
	}
	ha1, ok := a.ha1[cred.Username]
	switch {
	case !ok:
		return "", false, fmt.Errorf("%w: unknown user %q", errBadCredentials, cred.Username)
	case cred.Realm != a.realm:
		return "", false, fmt.Errorf("%w: realm %q, want %q", errBadCredentials, cred.Realm, a.realm)
	case cred.Algorithm != "" && !strings.EqualFold(cred.Algorithm, "MD5"):
		return "", false, fmt.Errorf("%w: algorithm %q, want MD5", errBadCredentials, cred.Algorithm)
	case cred.QOP != "" && cred.QOP != "auth":
		return "", false, fmt.Errorf("%w: qop %q, want auth", errBadCredentials, cred.QOP)
	case cred.Userhash:
		return "", false, fmt.Errorf("%w: userhash is not supported", errBadCredentials)
	}
	ours, issued, fresh := a.checkNonce(cred.Nonce)
	if !ours {
		return "", false, fmt.Errorf("%w: nonce %q is not one of ours", errBadCredentials, cred.Nonce)
	}
	if !sameURI(cred.URI, &req.Recipient) {
		return "", false, fmt.Errorf("%w: digest uri %q is not the Request-URI %q", errBadCredentials, cred.URI, req.Recipient.String())
	}
	chal := &digest.Challenge{Realm: a.realm, Nonce: cred.Nonce, Algorithm: "MD5"}
	if cred.QOP != "" {
		chal.QOP = []string{cred.QOP}
	}
	want, err := digest.Digest(chal, digest.Options{Method: string(req.Method), URI: cred.URI, Username: cred.Username,
		A1: ha1, Cnonce: cred.Cnonce, Count: cred.Nc})
	if err != nil {
		return "", false, fmt.Errorf("%w: %v", errBadCredentials, err)
	}
	if subtle.ConstantTimeCompare([]byte(strings.ToLower(cred.Response)), []byte(want.Response)) != 1 {
		return "", false, fmt.Errorf("%w: wrong response for user %q", errBadCredentials, cred.Username)
	}
	if !fresh {
		return cred.Username, true, fmt.Errorf("%w: nonce expired", errBadCredentials)
	}
	nc := cred.Nc
	if cred.QOP == "" {
		nc = 0 // RFC 2069 credentials carry no nc: their nonce is good once
	}
	if stale, err := a.uses.use(cred.Nonce, issued, nc, a.now(), a.lifetime); err != nil {
		return cred.Username, stale, err
	}
	return cred.Username, false, nil
}

// sameURI reports whether the digest uri s names the Request-URI ruri: the same text, or the same SIP URI
// compared as RFC 3261 §19.1.4 does for what a client may write differently (scheme and host case).
func sameURI(s string, ruri *sip.Uri) bool {
	if s == ruri.String() {
		return true
	}
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		return false
	}
	return strings.EqualFold(u.Scheme, ruri.Scheme) && u.User == ruri.User && u.Password == ruri.Password &&
		strings.EqualFold(u.Host, ruri.Host) && u.Port == ruri.Port &&
		paramsString(u.UriParams) == paramsString(ruri.UriParams) && paramsString(u.Headers) == paramsString(ruri.Headers)
}

func paramsString(p sip.HeaderParams) string {
	if p == nil {
		return ""
	}
	return p.String()
}

// checkAuth lets a request through when sip.auth is off, when it is an INVITE inside one of our dialogs, or
// when its Digest credentials are valid; otherwise it answers 401 with a challenge and returns false.
func (g *Gateway) checkAuth(req *sip.Request, tx responder) bool {
	a := g.auth
	if a == nil {
		return true
	}
	if req.Method == sip.INVITE && g.inDialog(req) != nil {
		return true // a re-INVITE of a dialog that was authenticated when it began
	}
	user, stale, err := a.verify(req)
	if err == nil {
		return true
	}
	if errors.Is(err, errNonceReused) && g.recent.seen(req) {
		// A retransmission, or a repeat of a recent request (same Call-ID, From-tag and CSeq): it carries the
		// Authorization the first had, and gets the first's answer without being served again (SPEC §8).
		return true
	}
	g.log.Info("request not authenticated", "method", string(req.Method), "user", user, "err", err, "stale", stale,
		"call_id", callID(req), "source", req.Source())
	g.refuse(req, tx, 401, "Unauthorized", "digest authentication required", sip.NewHeader("WWW-Authenticate", a.challenge(stale)))
	return false
}
