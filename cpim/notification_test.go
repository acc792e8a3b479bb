package cpim

import (
	"errors"
	"strings"
	"testing"
)

func TestNotificationRoundTrip(t *testing.T) {
	tests := []Notification{
		{MessageID: "34jk324j", DateTime: "2008-04-04T12:16:49-05:00", RecipientURI: "im:bob@example.com",
			OriginalRecipient: "im:bob@example.com", Kind: KindDelivery, Status: StatusDelivered},
		{MessageID: "a<b>&\"c'", DateTime: "2024-03-01T10:00:00Z", Kind: KindDisplay, Status: StatusDisplayed},
		{MessageID: "p1", DateTime: "2024-03-01T10:00:00Z", Kind: KindProcessing, Status: StatusStored},
		{MessageID: "f1", DateTime: "2024-03-01T10:00:00Z", RecipientURI: "sip:x@example.com?a=b&c=d", Kind: KindDelivery, Status: StatusFailed},
	}
	for _, in := range tests {
		xml := in.Marshal()
		if !strings.HasPrefix(string(xml), `<?xml version="1.0" encoding="UTF-8"?>`+"\r\n"+`<imdn xmlns="urn:ietf:params:xml:ns:imdn">`) {
			t.Errorf("Marshal prologue:\n%s", xml)
		}
		out, err := ParseNotification(xml)
		if err != nil {
			t.Fatalf("ParseNotification(Marshal(%+v)): %v\n%s", in, err, xml)
		}
		if *out != in {
			t.Errorf("round trip:\n got %+v\nwant %+v", *out, in)
		}
	}
}

func TestNotificationMarshalUnsafeNames(t *testing.T) {
	n := Notification{MessageID: "x", Kind: "bad kind>", Status: "<evil/>"}
	out, err := ParseNotification(n.Marshal())
	if err != nil {
		t.Fatalf("%v\n%s", err, n.Marshal())
	}
	if out.Kind != KindDelivery || out.Status != StatusError {
		t.Errorf("Kind, Status = %q, %q", out.Kind, out.Status)
	}
}

func TestParseNotificationErrors(t *testing.T) {
	const ns = `xmlns="urn:ietf:params:xml:ns:imdn"`
	tests := []struct{ name, xml string }{
		{"empty", ""},
		{"not XML", "delivered"},
		{"wrong root", `<notimdn ` + ns + `><message-id>x</message-id><delivery-notification><status><delivered/></status></delivery-notification></notimdn>`},
		{"wrong namespace", `<imdn xmlns="urn:example"><message-id>x</message-id><delivery-notification><status><delivered/></status></delivery-notification></imdn>`},
		{"no message-id", `<imdn ` + ns + `><delivery-notification><status><delivered/></status></delivery-notification></imdn>`},
		{"no notification", `<imdn ` + ns + `><message-id>x</message-id></imdn>`},
		{"two notifications", `<imdn ` + ns + `><message-id>x</message-id><delivery-notification><status><delivered/></status></delivery-notification><display-notification><status><displayed/></status></display-notification></imdn>`},
		{"no status", `<imdn ` + ns + `><message-id>x</message-id><delivery-notification></delivery-notification></imdn>`},
		{"empty status", `<imdn ` + ns + `><message-id>x</message-id><delivery-notification><status></status></delivery-notification></imdn>`},
		{"truncated", `<imdn ` + ns + `><message-id>x</message-id><delivery-notification><status><delivered/>`},
		{"too large", `<imdn ` + ns + `><message-id>` + strings.Repeat("x", maxNotificationSize) + `</message-id></imdn>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := ParseNotification([]byte(tt.xml))
			if !errors.Is(err, ErrMalformed) || n != nil {
				t.Errorf("ParseNotification = %+v, %v; want ErrMalformed", n, err)
			}
		})
	}
}

func TestParseNotificationTolerance(t *testing.T) {
	// No namespace at all, and an RCS-style extension element.
	n, err := ParseNotification([]byte(`<imdn><message-id> m1 </message-id><datetime>2024-03-01T10:00:00Z</datetime>` +
		`<rcsenvelopeext xmlns="urn:gsma:params:xml:ns:rcs:rcs:rcsenvelopeext"><x/></rcsenvelopeext>` +
		`<delivery-notification><status><failed/><reason>404</reason></status></delivery-notification></imdn>`))
	if err != nil {
		t.Fatal(err)
	}
	if n.MessageID != "m1" || n.Kind != KindDelivery || n.Status != StatusFailed {
		t.Errorf("got %+v", n)
	}
}
