package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/internal/certs"
)

// genCert writes a self-signed ECDSA P-256 pair for tests and first runs (sip.tls, msrp.tls). Peers that
// cannot check it against a CA check it against the a=fingerprint the gateway puts in its SDP.
// maxCertDays is the longest validity gen-cert makes: about 250 years, within time.Duration's 292.
const maxCertDays = 250 * 365

func genCert(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("msrpgw gen-cert", flag.ContinueOnError)
	fs.SetOutput(stderr)
	hosts := fs.String("host", strings.Join(certs.DefaultHosts(), ","), "comma-separated IP addresses and DNS names the certificate is for")
	days := fs.Int("days", 365, "validity in days")
	certFile := fs.String("cert", "", "certificate file to write (PEM; must not exist)")
	keyFile := fs.String("key", "", "private key file to write (PEM, mode 0600; must not exist)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *certFile == "" || *keyFile == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: msrpgw gen-cert [-host 127.0.0.1,localhost] [-days 365] -cert FILE -key FILE")
		return 2
	}
	if *days <= 0 || *days > maxCertDays {
		fmt.Fprintf(stderr, "msrpgw gen-cert: -days %d is not between 1 and %d\n", *days, maxCertDays)
		return 2
	}
	var list []string
	for _, h := range strings.Split(*hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			if err := config.CheckHost(h); err != nil {
				fmt.Fprintf(stderr, "msrpgw gen-cert: -host: %v\n", err)
				return 2
			}
			list = append(list, h)
		}
	}
	if len(list) == 0 {
		fmt.Fprintf(stderr, "msrpgw gen-cert: -host %q names no host\n", *hosts)
		return 2
	}
	pair, err := certs.Generate(list, time.Duration(*days)*24*time.Hour)
	if err != nil {
		fmt.Fprintln(stderr, "msrpgw gen-cert:", err)
		return 1
	}
	if err := pair.WriteFiles(*certFile, *keyFile); err != nil {
		fmt.Fprintln(stderr, "msrpgw gen-cert:", err)
		return 1
	}
	tc, err := pair.TLSCertificate()
	if err != nil {
		fmt.Fprintln(stderr, "msrpgw gen-cert:", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s and %s for %s, valid %d days\nfingerprint: %s\n", *certFile, *keyFile, strings.Join(list, ", "), *days, certs.SHA256(tc.Leaf))
	return 0
}
