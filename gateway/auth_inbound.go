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
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

// This file authenticates inbound requests with HTTP Digest (RFC 3261 §22, sip.auth) for deployments with
// no proxy in front: a MESSAGE, or an INVITE that is not in a dialog, without valid credentials of a user of
// sip.auth.users_file gets 401 with a challenge. Nonces are stateless (a timestamp signed with a key made
// at start), so the gateway keeps no per-client state.

// nonceLifetime is how long a nonce is accepted; an older one gets a new challenge with stale=true, which
// clients answer without asking their user again.
const nonceLifetime = 5 * time.Minute

// errBadCredentials is wrapped by every reason an Authorization header is not accepted.
var errBadCredentials = errors.New("digest credentials not accepted")

// inboundAuth checks Digest credentials against the users file.
type inboundAuth struct {
	realm    string
	ha1      map[string]string // username -> hex MD5(username:realm:password)
	key      []byte            // signs nonces
	lifetime time.Duration
	now      func() time.Time
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
	a := &inboundAuth{realm: realm, ha1: users, key: make([]byte, 32), lifetime: nonceLifetime, now: time.Now}
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

// checkNonce reports whether n is ours and whether it is still fresh.
func (a *inboundAuth) checkNonce(n string) (ours, fresh bool) {
	b, err := base64.RawURLEncoding.DecodeString(n)
	if err != nil || len(b) != 24 || !hmac.Equal(b[8:], a.sign(b[:8])) {
		return false, false
	}
	age := a.now().Sub(time.Unix(0, int64(binary.BigEndian.Uint64(b[:8]))))
	return true, age >= 0 && age <= a.lifetime
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
	ours, fresh := a.checkNonce(cred.Nonce)
	if !ours {
		return "", false, fmt.Errorf("%w: nonce %q is not one of ours", errBadCredentials, cred.Nonce)
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
	return cred.Username, false, nil
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
	g.log.Info("request not authenticated", "method", string(req.Method), "user", user, "err", err, "stale", stale,
		"call_id", callID(req), "source", req.Source())
	g.refuse(req, tx, 401, "Unauthorized", "digest authentication required", sip.NewHeader("WWW-Authenticate", a.challenge(stale)))
	return false
}
