package cpim

import (
	"bytes"
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2024, 3, 1, 10, 0, 0, 123e6, time.UTC)

func TestWrapRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		opts WrapOptions
		id   bool
		disp []string
	}{
		{"plain", WrapOptions{From: "sip:alice@example.com", To: "sip:bob@example.com", Now: testNow}, false, nil},
		{"IMDN without disposition", WrapOptions{From: "sip:alice@example.com", To: "sip:bob@example.com", Now: testNow, IMDN: true}, true, nil},
		{"IMDN requested", WrapOptions{From: "sip:alice@example.com", To: "Bob <sip:bob@example.com>", Now: testNow,
			Disposition: []string{PositiveDelivery, NegativeDelivery}}, true, []string{PositiveDelivery, NegativeDelivery}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte("Hello\r\n\r\nwith an empty line")
			doc := Wrap("text/plain;charset=UTF-8", body, tt.opts).Marshal()
			m, err := Parse(doc)
			if err != nil {
				t.Fatalf("Parse(Wrap): %v\n%s", err, doc)
			}
			if m.From() != "sip:alice@example.com" || m.To() != "sip:bob@example.com" {
				t.Errorf("From, To = %q, %q", m.From(), m.To())
			}
			if m.Get("To") != "<sip:bob@example.com>" && m.Get("To") != "Bob <sip:bob@example.com>" {
				t.Errorf("To header = %q", m.Get("To"))
			}
			if got := m.Get("DateTime"); got != "2024-03-01T10:00:00.123Z" {
				t.Errorf("DateTime = %q", got)
			}
			if _, err := time.Parse(time.RFC3339, m.Get("DateTime")); err != nil {
				t.Errorf("DateTime is not RFC 3339: %v", err)
			}
			if m.ContentType() != "text/plain;charset=UTF-8" || !bytes.Equal(m.Body, body) {
				t.Errorf("ContentType, Body = %q, %q", m.ContentType(), m.Body)
			}
			if id := m.IMDNMessageID(); (id != "") != tt.id || tt.id && len(id) < 16 {
				t.Errorf("IMDNMessageID = %q", id)
			}
			if got := m.DispositionNotification(); !reflect.DeepEqual(got, tt.disp) {
				t.Errorf("DispositionNotification = %q, want %q", got, tt.disp)
			}
		})
	}
}

func TestWrapMessageIDs(t *testing.T) {
	opts := WrapOptions{From: "sip:a@example.com", To: "sip:b@example.com", IMDN: true}
	seen := map[string]bool{}
	for range 100 {
		id := Wrap("text/plain", nil, opts).IMDNMessageID()
		if len(id) < 16 || seen[id] || strings.ContainsAny(id, " \t<>\",;") {
			t.Fatalf("message-id %q: too short, repeated or not a token", id)
		}
		seen[id] = true
	}
	opts.IMDNMessageID = "given-id"
	if id := Wrap("text/plain", nil, opts).IMDNMessageID(); id != "given-id" {
		t.Errorf("IMDNMessageID = %q, want the given one", id)
	}
	if dt := Wrap("", nil, WrapOptions{}).Get("DateTime"); dt == "" || strings.HasPrefix(dt, "0001") {
		t.Errorf("zero Now gives DateTime %q, want the current time", dt)
	}
}

func TestNewDeliveryIMDN(t *testing.T) {
	orig, err := Parse(readVector(t, "rfc5438-7.1.1.3.cpim"))
	if err != nil {
		t.Fatal(err)
	}
	for _, status := range []string{StatusDelivered, StatusFailed} {
		t.Run(status, func(t *testing.T) {
			m, err := NewDeliveryIMDN(orig, status, testNow)
			if err != nil {
				t.Fatal(err)
			}
			m, err = Parse(m.Marshal())
			if err != nil {
				t.Fatal(err)
			}
			if m.From() != "im:bob@example.com" || m.To() != "im:alice@example.com" {
				t.Errorf("From, To = %q, %q", m.From(), m.To())
			}
			if id := m.IMDNMessageID(); id == "" || id == "34jk324j" {
				t.Errorf("IMDN's own Message-ID = %q, want a fresh one", id)
			}
			if m.DispositionNotification() != nil {
				t.Errorf("an IMDN must not ask for IMDNs: %q", m.DispositionNotification())
			}
			if m.Get("DateTime") != "2024-03-01T10:00:00.123Z" {
				t.Errorf("DateTime = %q", m.Get("DateTime"))
			}
			want := []Header{{"Content-Type", IMDNType}, {"Content-Disposition", "notification"}}
			if !reflect.DeepEqual(m.ContentHeaders, want) || !m.IsControl() {
				t.Errorf("ContentHeaders = %q", m.ContentHeaders)
			}
			n, err := ParseNotification(m.Body)
			if err != nil {
				t.Fatalf("ParseNotification: %v\n%s", err, m.Body)
			}
			wantN := Notification{MessageID: "34jk324j", DateTime: "2006-04-04T12:16:49-05:00",
				RecipientURI: "im:bob@example.com", Kind: KindDelivery, Status: status}
			if *n != wantN {
				t.Errorf("notification:\n got %+v\nwant %+v", *n, wantN)
			}
		})
	}
}

func TestNewDeliveryIMDNRoutes(t *testing.T) {
	orig, err := Parse([]byte("From: <sip:alice@example.com>\r\nTo: <sip:bob@example.com>\r\n" +
		"NS: i <urn:ietf:params:imdn>\r\ni.Message-ID: m1\r\ni.Original-To: Bob <sip:bob@old.example.com>\r\n" +
		"i.IMDN-Record-Route: <sip:as1@example.com>\r\ni.IMDN-Record-Route: <sip:as2@example.com>\r\n" +
		"i.Disposition-Notification: positive-delivery\r\n\r\nContent-Type: text/plain\r\n\r\nhi"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewDeliveryIMDN(orig, StatusDelivered, testNow)
	if err != nil {
		t.Fatal(err)
	}
	var routes []string
	for _, h := range m.Headers {
		if h.Name == "imdn.IMDN-Route" {
			routes = append(routes, h.Value)
		}
	}
	if !reflect.DeepEqual(routes, []string{"<sip:as1@example.com>", "<sip:as2@example.com>"}) {
		t.Errorf("IMDN-Route = %q", routes)
	}
	n, err := ParseNotification(m.Body)
	if err != nil || n.OriginalRecipient != "sip:bob@old.example.com" || n.DateTime != "2024-03-01T10:00:00.123Z" {
		t.Errorf("notification = %+v, %v", n, err)
	}
}

func TestNewDeliveryIMDNErrors(t *testing.T) {
	withID, _ := Parse([]byte("From: <a:b>\r\nTo: <c:d>\r\nimdn.Message-ID: x\r\n\r\nContent-Type: text/plain\r\n\r\nhi"))
	noID, _ := Parse([]byte("From: <a:b>\r\nTo: <c:d>\r\n\r\nContent-Type: text/plain\r\n\r\nhi"))
	noFrom, _ := Parse([]byte("To: <c:d>\r\nimdn.Message-ID: x\r\n\r\nContent-Type: text/plain\r\n\r\nhi"))
	if _, err := NewDeliveryIMDN(noID, StatusDelivered, testNow); !errors.Is(err, ErrNoMessageID) {
		t.Errorf("no Message-ID: %v", err)
	}
	if _, err := NewDeliveryIMDN(noFrom, StatusDelivered, testNow); !errors.Is(err, ErrMalformed) {
		t.Errorf("no From: %v", err)
	}
	for _, status := range []string{"displayed", "", "Delivered"} {
		if _, err := NewDeliveryIMDN(withID, status, testNow); err == nil {
			t.Errorf("status %q accepted", status)
		}
	}
	if _, err := NewDeliveryIMDN(nil, StatusDelivered, testNow); err == nil {
		t.Error("nil message accepted")
	}
}

// A wrapped IMDN carries Content-Disposition: notification (RFC 5438 §7.2.1.1), once, and so is recognised as
// one (§9); an IM does not.
func TestWrapIMDNIsNotification(t *testing.T) {
	opts := WrapOptions{From: "sip:alice@example.com", To: "sip:bob@example.com", Now: testNow}
	for _, tt := range []struct {
		ctype string
		want  []Header
	}{
		{IMDNType, []Header{{"Content-Type", IMDNType}, {"Content-Disposition", "notification"}}},
		{"Message/IMDN+XML; charset=UTF-8", []Header{{"Content-Type", "Message/IMDN+XML; charset=UTF-8"}, {"Content-Disposition", "notification"}}},
		{"text/plain", []Header{{"Content-Type", "text/plain"}}},
		{IsComposingType, []Header{{"Content-Type", IsComposingType}}},
	} {
		m, err := Parse(Wrap(tt.ctype, []byte("<imdn/>"), opts).Marshal())
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(m.ContentHeaders, tt.want) {
			t.Errorf("Wrap(%q): ContentHeaders = %q, want %q", tt.ctype, m.ContentHeaders, tt.want)
		}
	}
}

// RFC 3862 §3.6: To-header = "To" ": " [ Formal-name ] "<" URI ">". An IM whose From lacks the closing '>'
// is not one NewDeliveryIMDN can answer: From() hands back the whole broken value ("Alice <sip:..."), and the
// IMDN goes out with a To header that is not a CPIM To (and that its receiver cannot match to anybody). It
// must be refused (ErrMalformed, as for a missing From) or carry a well-formed To.
func TestIMDNForUnterminatedFromRefused(t *testing.T) {
	orig, err := Parse([]byte("From: Alice <sip:alice@example.com\r\nTo: <sip:bob@example.com>\r\n" +
		"DateTime: 2024-03-01T10:00:00Z\r\nNS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: m1\r\n" +
		"imdn.Disposition-Notification: positive-delivery\r\n\r\nContent-Type: text/plain\r\n\r\nhi"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := NewDeliveryIMDN(orig, StatusDelivered, testNow)
	if errors.Is(err, ErrMalformed) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	to := n.Get("To")
	if !regexp.MustCompile(`^([^<>]*)<[^<>]+>$`).MatchString(to) {
		t.Fatalf("IMDN for an IM from %q has To %q, not [Formal-name] \"<\" URI \">\" (RFC 3862 §3.6); From() = %q\n%s",
			orig.Get("From"), to, orig.From(), n.Marshal())
	}
}
