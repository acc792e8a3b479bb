package certs

import (
	"os"
	"strings"
	"testing"
)

// FuzzParseFingerprint: any input either fails or round-trips through String.
func FuzzParseFingerprint(f *testing.F) {
	data, err := os.ReadFile("testdata/fingerprints.txt")
	if err != nil {
		f.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if line != "" && line[0] != '#' {
			f.Add(line)
		}
	}
	f.Add("sha-256 " + strings.Repeat("AB:", 31) + "AB")
	f.Fuzz(func(t *testing.T, v string) {
		fp, err := ParseFingerprint(v)
		if err != nil {
			return
		}
		again, err := ParseFingerprint(fp.String())
		if err != nil {
			t.Fatalf("%q -> %q does not parse: %v", v, fp.String(), err)
		}
		if again.String() != fp.String() {
			t.Fatalf("%q -> %q -> %q", v, fp.String(), again.String())
		}
	})
}
