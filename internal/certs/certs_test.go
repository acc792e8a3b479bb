package certs

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestGenerate(t *testing.T) {
	p, err := Generate([]string{"127.0.0.1", "localhost", "gw.test"}, 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	leaf := c.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			t.Fatal(err)
		}
	}
	k, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || k.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", leaf.PublicKey)
	}
	if len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Errorf("IP SANs %v, want [127.0.0.1]", leaf.IPAddresses)
	}
	if strings.Join(leaf.DNSNames, ",") != "localhost,gw.test" {
		t.Errorf("DNS SANs %v", leaf.DNSNames)
	}
	if d := time.Until(leaf.NotAfter); d < 47*time.Hour || d > 49*time.Hour {
		t.Errorf("NotAfter in %s, want about 48h", d)
	}
	if err := leaf.CheckSignatureFrom(leaf); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	if _, err := Generate(nil, 0); err == nil {
		t.Error("zero validity accepted")
	}
	if _, err := Generate([]string{"a", " "}, time.Hour); err == nil {
		t.Error("empty host accepted")
	}
}

// TestHandshake: a pair made here serves TLS on loopback, a client trusting it (as sip.tls.client_ca does)
// verifies it by IP, and the client sees the fingerprint the server would advertise.
func TestHandshake(t *testing.T) {
	p, err := Generate(nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{c}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		io.WriteString(nc, "hello\n")
	}()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.CertPEM)
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("handshake with the generated pair: %v", err)
	}
	defer conn.Close()
	if line, _ := bufio.NewReader(conn).ReadString('\n'); line != "hello\n" {
		t.Errorf("read %q", line)
	}
	peer := conn.ConnectionState().PeerCertificates[0]
	if err := Match(SHA256(c.Leaf), peer); err != nil {
		t.Errorf("own fingerprint does not match what the client saw: %v", err)
	}
}

func TestWriteFiles(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, err := WriteTemp(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		t.Fatalf("written pair does not load: %v", err)
	}
	st, err := os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", st.Mode().Perm())
	}
	p, _ := Generate(nil, time.Hour)
	if err := p.WriteFiles(certFile, filepath.Join(dir, "other.pem")); err == nil {
		t.Error("an existing certificate file was overwritten")
	}
	if _, err := os.Stat(filepath.Join(dir, "other.pem")); !os.IsNotExist(err) {
		t.Error("the key of a refused pair was left behind")
	}
	if err := p.WriteFiles(filepath.Join(dir, "x"), filepath.Join(dir, "x")); err == nil {
		t.Error("same file for certificate and key accepted")
	}
}

func TestParseFingerprintVectors(t *testing.T) {
	data, err := os.ReadFile("testdata/fingerprints.txt")
	if err != nil {
		t.Fatal(err)
	}
	var first Fingerprint
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		f, err := ParseFingerprint(line)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if f.Hash != "sha-1" || len(f.Digest) != 20 {
			t.Errorf("%q parsed as %s with %d bytes", line, f.Hash, len(f.Digest))
		}
		if n == 0 {
			first = f
			if f.String() != line {
				t.Errorf("String() = %q, want %q", f.String(), line)
			}
		} else if f.String() != first.String() {
			t.Errorf("%q differs from the first vector: %s", line, f)
		}
		n++
	}
	if n < 2 {
		t.Fatalf("only %d vectors", n)
	}
}

func TestParseFingerprintErrors(t *testing.T) {
	for _, v := range []string{
		"",
		"SHA-256",
		"MD5 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B",
		"SHA-1 4A:AD:B9",
		"SHA-1 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:ZZ",
		"SHA-1 4AAD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB:",
	} {
		if f, err := ParseFingerprint(v); err == nil {
			t.Errorf("%q parsed as %v", v, f)
		}
	}
	if _, err := ParseFingerprint("md5 4A:AD"); !errors.Is(err, ErrUnsupportedHash) {
		t.Errorf("md5: %v, want ErrUnsupportedHash", err)
	}
}

func TestMatch(t *testing.T) {
	a, _ := Generate(nil, time.Hour)
	b, _ := Generate(nil, time.Hour)
	ca, _ := a.TLSCertificate()
	cb, _ := b.TLSCertificate()
	for _, hash := range []string{"sha-1", "SHA-1", "sha-256", "Sha-256", "sha-384", "SHA-512", "sha-224"} {
		f, err := Of(ca.Leaf.Raw, hash)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{f.String(), strings.ToLower(f.String())} {
			if err := Match(v, ca.Leaf); err != nil {
				t.Errorf("%s: own certificate: %v", v, err)
			}
			if err := Match(v, cb.Leaf); !errors.Is(err, ErrFingerprintMismatch) {
				t.Errorf("%s: other certificate: %v, want ErrFingerprintMismatch", v, err)
			}
		}
	}
	if err := Match("SHA-256 00", ca.Leaf); err == nil || errors.Is(err, ErrFingerprintMismatch) {
		t.Errorf("malformed value: %v", err)
	}
}

// With several a=fingerprint values, those of the strongest hash decide (RFC 8122 §5): one of them must be
// the certificate's; weaker ones and values that do not parse are not looked at.
func TestMatchAny(t *testing.T) {
	a, _ := Generate(nil, time.Hour)
	b, _ := Generate(nil, time.Hour)
	ca, _ := a.TLSCertificate()
	cb, _ := b.TLSCertificate()
	fp := func(c tls.Certificate, hash string) string {
		f, err := Of(c.Leaf.Raw, hash)
		if err != nil {
			t.Fatal(err)
		}
		return f.String()
	}
	for _, tc := range []struct {
		name   string
		values []string
		ok     bool
	}{
		{"the strongest matches", []string{fp(cb, "sha-1"), fp(ca, "sha-256")}, true},
		{"only a weaker one matches", []string{fp(ca, "sha-1"), fp(cb, "sha-256")}, false},
		{"one of two of the strongest hash", []string{fp(cb, "sha-256"), fp(ca, "sha-256")}, true},
		{"garbage beside a match", []string{"SHA-256 00", fp(ca, "sha-512")}, true},
		{"unknown hash beside a match", []string{"md5 00:11", fp(ca, "sha-256")}, true},
	} {
		err := MatchAny(tc.values, ca.Leaf)
		if tc.ok && err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if !tc.ok && !errors.Is(err, ErrFingerprintMismatch) {
			t.Errorf("%s: %v, want ErrFingerprintMismatch", tc.name, err)
		}
	}
	if err := MatchAny([]string{"SHA-256 00"}, ca.Leaf); err == nil || errors.Is(err, ErrFingerprintMismatch) {
		t.Errorf("no usable value: %v, want the parse error", err)
	}
	if err := MatchAny(nil, ca.Leaf); err == nil {
		t.Error("no value: no error")
	}
}
