package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DefaultHosts returns the names a pair is made for when none are given: loopback, as tests and first
// runs use.
func DefaultHosts() []string { return []string{"127.0.0.1", "localhost"} }

// Pair is a PEM-encoded certificate and its private key.
type Pair struct {
	CertPEM []byte
	KeyPEM  []byte
}

// Generate makes a self-signed ECDSA P-256 certificate valid for hosts (IP addresses go into the IP SANs,
// names into the DNS SANs; the first host is also the Common Name) from now for validFor. It is usable
// both as a TLS server and as a TLS client certificate.
func Generate(hosts []string, validFor time.Duration) (Pair, error) {
	if len(hosts) == 0 {
		hosts = DefaultHosts()
	}
	if validFor <= 0 {
		return Pair{}, fmt.Errorf("certs: validity %s is not positive", validFor)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Pair{}, fmt.Errorf("certs: generating a P-256 key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return Pair{}, fmt.Errorf("certs: serial number: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: hosts[0], Organization: []string{"msrpgw self-signed"}},
		// A little backdating keeps a peer whose clock is slightly behind from refusing a fresh pair.
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validFor),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		// IsCA lets the pair's own certificate serve as the trust root of a peer (sip.tls.client_ca).
		IsCA: true,
	}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			return Pair{}, errors.New("certs: empty host name")
		}
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return Pair{}, fmt.Errorf("certs: creating the certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Pair{}, fmt.Errorf("certs: encoding the key: %w", err)
	}
	return Pair{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// TLSCertificate parses the pair for crypto/tls (Leaf filled in).
func (p Pair) TLSCertificate() (tls.Certificate, error) {
	c, err := tls.X509KeyPair(p.CertPEM, p.KeyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certs: %w", err)
	}
	return c, nil
}

// WriteFiles writes the certificate to certFile (mode 0644) and the key to keyFile (mode 0600). It refuses
// to overwrite either file.
func (p Pair) WriteFiles(certFile, keyFile string) error {
	if certFile == "" || keyFile == "" {
		return errors.New("certs: both a certificate and a key file name are needed")
	}
	if filepath.Clean(certFile) == filepath.Clean(keyFile) {
		return fmt.Errorf("certs: certificate and key would both go to %s", certFile)
	}
	if err := writeNew(keyFile, p.KeyPEM, 0o600); err != nil {
		return err
	}
	if err := writeNew(certFile, p.CertPEM, 0o644); err != nil {
		os.Remove(keyFile)
		return err
	}
	return nil
}

func writeNew(name string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("certs: writing %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("certs: writing %s: %w", name, err)
	}
	return nil
}

// WriteTemp makes a pair for hosts valid for a day and writes it as cert.pem and key.pem into dir (a test's
// t.TempDir()); it returns the two file names.
func WriteTemp(dir string, hosts ...string) (certFile, keyFile string, err error) {
	p, err := Generate(hosts, 24*time.Hour)
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := p.WriteFiles(certFile, keyFile); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}
