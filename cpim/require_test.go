package cpim

import (
	"reflect"
	"testing"
)

func TestUnsupported(t *testing.T) {
	rfc, err := Parse(readVector(t, "rfc3862-5.1.cpim"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rfc.Unsupported(), []string{"MyFeatures.VitalMessageOption"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("RFC 3862 §5.1 example: Unsupported() = %q, want %q", got, want)
	}
	for _, tc := range []struct {
		name, headers string
		want          []string
	}{
		{"no Require", "From: <sip:a@x>\r\n", nil},
		{"core headers", "Require: DateTime, Subject,cc\r\n", nil},
		{"IMDN under its declared prefix", "NS: im <urn:ietf:params:imdn>\r\nRequire: im.Disposition-Notification\r\n", nil},
		{"IMDN under the undeclared imdn prefix", "Require: imdn.Message-ID\r\n", nil},
		{"IMDN namespace URI in another case", "NS: i <URN:IETF:PARAMS:IMDN>\r\nRequire: i.Message-ID\r\n", nil},
		{"imdn prefix given to another namespace", "NS: imdn <mid:x@y>\r\nRequire: imdn.Message-ID\r\n", []string{"imdn.Message-ID"}},
		{"undeclared prefix", "Require: Foo.Bar\r\n", []string{"Foo.Bar"}},
		{"unknown IMDN header", "NS: imdn <urn:ietf:params:imdn>\r\nRequire: imdn.Frobnicate\r\n", []string{"imdn.Frobnicate"}},
		{"unknown core header, names are case-sensitive", "Require: Colour, datetime\r\n", []string{"Colour", "datetime"}},
		{"several Require headers", "Require: From\r\nRequire: X.Y, To\r\n", []string{"X.Y"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse([]byte(tc.headers + "\r\nContent-Type: text/plain\r\n\r\nhi"))
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Unsupported(); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Unsupported() = %q, want %q", got, tc.want)
			}
		})
	}
}
