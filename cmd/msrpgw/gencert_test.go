package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestGenCert(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "gw.crt"), filepath.Join(dir, "gw.key")
	code, out, stderr := cli(t, "gen-cert", "-host", "127.0.0.1,gw.test", "-days", "30", "-cert", certFile, "-key", keyFile)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "fingerprint: SHA-256 ") {
		t.Errorf("output lacks the fingerprint:\n%s", out)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatalf("written pair does not load: %v", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) || len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "gw.test" {
		t.Errorf("SANs %v %v, want 127.0.0.1 and gw.test", leaf.IPAddresses, leaf.DNSNames)
	}
	if d := time.Until(leaf.NotAfter); d < 29*24*time.Hour || d > 31*24*time.Hour {
		t.Errorf("valid for %s, want 30 days", d)
	}
	if st, err := os.Stat(keyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v, mode %v, want 0600", err, st.Mode().Perm())
	}

	// Refusals: existing files are never overwritten; missing or bad flags are usage errors.
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-cert", certFile, "-key", filepath.Join(dir, "k2")}, 1, "exists"},
		{[]string{"-cert", filepath.Join(dir, "c3")}, 2, "usage"},
		{[]string{"-days", "0", "-cert", filepath.Join(dir, "c4"), "-key", filepath.Join(dir, "k4")}, 2, "not between 1 and"},
		{[]string{"-host", "bad host!", "-cert", filepath.Join(dir, "c5"), "-key", filepath.Join(dir, "k5")}, 2, "neither an IP address nor a DNS name"},
		{[]string{"-host", ",", "-cert", filepath.Join(dir, "c6"), "-key", filepath.Join(dir, "k6")}, 2, "names no host"},
	} {
		var o, e bytes.Buffer
		if code := run(append([]string{"gen-cert"}, tc.args...), &o, &e); code != tc.code || !strings.Contains(e.String(), tc.want) {
			t.Errorf("gen-cert %v: exit %d, stderr %q; want exit %d mentioning %q", tc.args, code, e.String(), tc.code, tc.want)
		}
	}
	for _, k := range []string{"k2", "k5", "k6"} {
		if _, err := os.Stat(filepath.Join(dir, k)); !os.IsNotExist(err) {
			t.Errorf("a refused gen-cert left a key file %s", k)
		}
	}
	var o, e bytes.Buffer
	run([]string{"help"}, &o, &e)
	if !strings.Contains(o.String(), "gen-cert") {
		t.Errorf("usage does not list gen-cert:\n%s", o.String())
	}
}

// -days beyond what a time.Duration holds is a usage error (exit 2), not an overflowed validity.
func TestGenCertLargeDays(t *testing.T) {
	dir := t.TempDir()
	code, _, stderr := cli(t, "gen-cert", "-days", "200000", "-cert", filepath.Join(dir, "c.pem"), "-key", filepath.Join(dir, "k.pem"))
	if code == 0 {
		return
	}
	if code != 2 || strings.Contains(stderr, "validity -") {
		t.Errorf("gen-cert -days 200000: exit %d, %q; want the pair, or exit 2 naming -days' bound", code, strings.TrimSpace(stderr))
	}
}
