package certs

import (
	"cmp"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
)

// ErrFingerprintMismatch is wrapped by the error of Match when the certificate is not the one the
// fingerprint names: RFC 4975 §14.4 wants the session torn down then.
var ErrFingerprintMismatch = errors.New("certificate does not match a=fingerprint")

// ErrUnsupportedHash is wrapped when a fingerprint names a hash function this package does not compute.
var ErrUnsupportedHash = errors.New("unsupported a=fingerprint hash function")

// Fingerprint is a parsed SDP a=fingerprint value (RFC 4572 §5): "sha-256 AB:CD:…".
type Fingerprint struct {
	Hash   string // lower case: sha-1, sha-224, sha-256, sha-384 or sha-512
	Digest []byte
}

// newHash returns the hash function named by an RFC 4572 hash-func token (already lower case).
func newHash(name string) (hash.Hash, error) {
	switch name {
	case "sha-1":
		return sha1.New(), nil
	case "sha-224":
		return sha256.New224(), nil
	case "sha-256":
		return sha256.New(), nil
	case "sha-384":
		return sha512.New384(), nil
	case "sha-512":
		return sha512.New(), nil
	}
	return nil, fmt.Errorf("%w %q (want sha-1, sha-224, sha-256, sha-384 or sha-512)", ErrUnsupportedHash, name)
}

// ParseFingerprint parses an a=fingerprint value. The hash name is case-insensitive (RFC 4572 §5: the
// token is; peers send both "SHA-256" and "sha-256"), and so are the hex digits.
func ParseFingerprint(v string) (Fingerprint, error) {
	name, hexs, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok {
		return Fingerprint{}, fmt.Errorf("a=fingerprint %q: want \"HASH XX:XX:…\"", v)
	}
	name = strings.ToLower(name)
	h, err := newHash(name)
	if err != nil {
		return Fingerprint{}, err
	}
	hexs = strings.TrimSpace(hexs)
	parts := strings.Split(hexs, ":")
	if len(parts) != h.Size() {
		return Fingerprint{}, fmt.Errorf("a=fingerprint %q: %d bytes, %s has %d", v, len(parts), name, h.Size())
	}
	d := make([]byte, 0, h.Size())
	for _, p := range parts {
		if len(p) != 2 {
			return Fingerprint{}, fmt.Errorf("a=fingerprint %q: %q is not two hex digits", v, p)
		}
		b, err := hex.DecodeString(p)
		if err != nil {
			return Fingerprint{}, fmt.Errorf("a=fingerprint %q: %q is not two hex digits", v, p)
		}
		d = append(d, b[0])
	}
	return Fingerprint{Hash: name, Digest: d}, nil
}

// Of computes the fingerprint of a DER certificate with the named hash (case-insensitive).
func Of(der []byte, hashName string) (Fingerprint, error) {
	name := strings.ToLower(hashName)
	h, err := newHash(name)
	if err != nil {
		return Fingerprint{}, err
	}
	h.Write(der)
	return Fingerprint{Hash: name, Digest: h.Sum(nil)}, nil
}

// String formats f as an a=fingerprint value: the hash name in upper case, as RFC 4572's examples and
// most implementations write it, and upper-case hex pairs.
func (f Fingerprint) String() string {
	var b strings.Builder
	b.WriteString(strings.ToUpper(f.Hash))
	for i, c := range f.Digest {
		if i == 0 {
			b.WriteByte(' ')
		} else {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", c)
	}
	return b.String()
}

// SHA256 is the a=fingerprint value of cert with SHA-256, what the gateway advertises for its own
// certificate.
func SHA256(cert *x509.Certificate) string {
	f, _ := Of(cert.Raw, "sha-256")
	return f.String()
}

// hashStrength orders the hash functions, strongest first.
var hashStrength = []string{"sha-512", "sha-384", "sha-256", "sha-224", "sha-1"}

// MatchAny checks cert against an SDP's a=fingerprint values, of which RFC 8122 §5 allows several: among
// those whose hash this package computes, the ones of the strongest hash must include cert's. The error wraps
// ErrFingerprintMismatch when they do not; with no usable value it is the first value's parse error.
func MatchAny(values []string, cert *x509.Certificate) error {
	var firstErr error
	byHash := map[string][]Fingerprint{}
	for _, v := range values {
		f, err := ParseFingerprint(v)
		if err != nil {
			firstErr = cmp.Or(firstErr, err)
			continue
		}
		byHash[f.Hash] = append(byHash[f.Hash], f)
	}
	for _, h := range hashStrength {
		fs := byHash[h]
		if len(fs) == 0 {
			continue
		}
		got, err := Of(cert.Raw, h)
		if err != nil {
			return err
		}
		for _, f := range fs {
			if subtle.ConstantTimeCompare(got.Digest, f.Digest) == 1 {
				return nil
			}
		}
		return fmt.Errorf("%w: the peer's certificate (%s) has %s", ErrFingerprintMismatch, cert.Subject.CommonName, got)
	}
	if firstErr == nil {
		firstErr = errors.New("no a=fingerprint")
	}
	return firstErr
}

// Match checks that cert is the certificate the a=fingerprint value v names. The error wraps
// ErrFingerprintMismatch when it is not, ErrUnsupportedHash for an unknown hash function.
func Match(v string, cert *x509.Certificate) error { return MatchAny([]string{v}, cert) }
