package config

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"
)

// TestListenersThatCannotOpenTogether: two listeners the kernel would not open side by side (one protocol, one
// port, one address however it is written, or a wildcard address, which takes the port on every address) are
// refused with the key, line and column of the second; SIP tcp and tls, MSRP and the admin API are all TCP.
func TestListenersThatCannotOpenTogether(t *testing.T) {
	checkRefusals(t, []refusal{
		{"tcp and tls on one address", "sip:\n  listen: [tcp:127.0.0.1:5070, tls:127.0.0.1:5070]\n  tls: {cert: c.pem, key: k.pem}\n",
			"key sip.listen[1] (line 2, column 32): tls:127.0.0.1:5070 takes TCP port 5070 on 127.0.0.1, as sip.listen[0] (tcp:127.0.0.1:5070) does"},
		{"port written with a leading zero", "sip:\n  listen: [tcp:127.0.0.1:5070, \"tcp:127.0.0.1:05070\"]\n",
			"key sip.listen[1] (line 2, column 32): tcp:127.0.0.1:05070 takes TCP port 5070 on 127.0.0.1, as sip.listen[0]"},
		{"one IPv6 address written two ways", "sip:\n  listen: [\"udp:[::1]:5070\", \"udp:[0:0::1]:5070\"]\n",
			"key sip.listen[1] (line 2, column 30): udp:[0:0::1]:5070 takes UDP port 5070 on ::1, as sip.listen[0]"},
		{"IPv4-mapped address", "sip:\n  listen: [udp:127.0.0.1:5070, \"udp:[::ffff:127.0.0.1]:5070\"]\n",
			"key sip.listen[1] (line 2, column 32): udp:[::ffff:127.0.0.1]:5070 takes UDP port 5070 on 127.0.0.1, as sip.listen[0]"},
		{"wildcard after a specific address", "sip:\n  listen: [udp:127.0.0.1:5070, udp:0.0.0.0:5070]\n",
			"key sip.listen[1] (line 2, column 32): udp:0.0.0.0:5070 takes UDP port 5070 on every address, as sip.listen[0] (udp:127.0.0.1:5070) does on 127.0.0.1"},
		{"SIP tcp and MSRP", "sip:\n  listen: [tcp:127.0.0.1:5070]\nmsrp:\n  listen: msrp://127.0.0.1:5070;tcp\n",
			"key msrp.listen (line 4, column 11): msrp://127.0.0.1:5070;tcp takes TCP port 5070 on 127.0.0.1, as sip.listen[0] (tcp:127.0.0.1:5070) does"},
		{"MSRP and admin", "msrp:\n  listen: msrp://127.0.0.1:8181;tcp\nadmin:\n  listen: 127.0.0.1:8181\n",
			"key admin.listen (line 4, column 11): 127.0.0.1:8181 takes TCP port 8181 on 127.0.0.1, as msrp.listen (msrp://127.0.0.1:8181;tcp) does"},
		{"admin on every IPv6 address and SIP tls", "sip:\n  listen: [\"tls:[::1]:5071\"]\n  tls: {cert: c.pem, key: k.pem}\nadmin:\n  listen: \"[::]:5071\"\n",
			"key admin.listen (line 5, column 11): [::]:5071 takes TCP port 5071 on every address"},
	})
}

// TestListenersThatOpenTogether: what the kernel does open side by side is accepted.
func TestListenersThatOpenTogether(t *testing.T) {
	for _, y := range []string{
		"sip:\n  listen: [udp:127.0.0.1:5070, tcp:127.0.0.1:5070]\n", // UDP and TCP are two ports
		"sip:\n  listen: [tcp:127.0.0.1:5070, tcp:127.0.0.2:5070]\nmsrp:\n  listen: msrp://127.0.0.3:5070;tcp\n",
		"sip:\n  listen: [udp:127.0.0.1:0, tcp:127.0.0.1:0]\nmsrp:\n  listen: msrp://127.0.0.1:0;tcp\nadmin:\n  listen: 127.0.0.1:0\n", // each picks its own
		"sip:\n  listen: [udp:0.0.0.0:5070, tcp:127.0.0.1:5070]\n",
	} {
		if _, err := Parse([]byte(y)); err != nil {
			t.Errorf("Parse refused:\n%s\n%v", y, err)
		}
	}
}

// A specific address after a wildcard one names the wildcard's reach.
func TestListenerAfterWildcard(t *testing.T) {
	_, err := Parse([]byte("sip:\n  listen: [\"tcp:[::]:5070\", tcp:127.0.0.1:5070]\n"))
	want := "key sip.listen[1] (line 2, column 29): tcp:127.0.0.1:5070 takes TCP port 5070 on 127.0.0.1, as sip.listen[0] (tcp:[::]:5070) does on every address; both cannot listen there"
	if err == nil || err.Error() != want {
		t.Errorf("Parse error:\n%v\nwant:\n%s", err, want)
	}
}

// TestPlace: an error that starts with the key it is about is put at that key's line and column, the rest of
// its text and its chain kept; another one is left as it is.
func TestPlace(t *testing.T) {
	c, err := Parse([]byte("sip:\n  auth: {realm: gw, users_file: /x/users}\n"))
	if err != nil {
		t.Fatal(err)
	}
	cause := fmt.Errorf("sip.auth.users_file: open /x/users: %w", fs.ErrNotExist)
	got := c.Place(cause)
	if want := "key sip.auth.users_file (line 2, column 33): open /x/users: file does not exist"; got.Error() != want {
		t.Errorf("Place: %v\nwant %s", got, want)
	}
	if !errors.Is(got, fs.ErrNotExist) {
		t.Errorf("Place lost the error's chain: %v", got)
	}
	other := errors.New("sip: the UDP listener 127.0.0.1:5060 is not served")
	if got := c.Place(other); got != other {
		t.Errorf("Place(%v) = %v, want it unchanged", other, got)
	}
	if got := Default().Place(cause).Error(); got != "key sip.auth.users_file: open /x/users: file does not exist" {
		t.Errorf("Place on the default config: %s", got)
	}
}
