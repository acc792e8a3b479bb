package cpim_test

import (
	"fmt"
	"strings"
	"time"

	"github.com/msrpgw/msrpgw/cpim"
)

// Wrapping a page-mode text for an RCS peer that only accepts message/cpim, asking for a delivery IMDN.
func ExampleWrap() {
	m := cpim.Wrap("text/plain;charset=UTF-8", []byte("Hello Bob"), cpim.WrapOptions{
		From:          "sip:alice@example.com",
		To:            "sip:bob@example.com",
		Now:           time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC),
		IMDNMessageID: "Hk3j9DkxA0", // normally left empty: Wrap draws a random one
		Disposition:   []string{cpim.PositiveDelivery},
	})
	fmt.Print(strings.ReplaceAll(string(m.Marshal()), "\r\n", "\n")) // CRLF on the wire
	// Output:
	// From: <sip:alice@example.com>
	// To: <sip:bob@example.com>
	// DateTime: 2024-03-01T10:00:00.000Z
	// NS: imdn <urn:ietf:params:imdn>
	// imdn.Message-ID: Hk3j9DkxA0
	// imdn.Disposition-Notification: positive-delivery
	//
	// Content-Type: text/plain;charset=UTF-8
	//
	// Hello Bob
}

// After the page-mode user's side answered 200 to the MESSAGE carrying an RCS message, the gateway sends the
// "delivered" IMDN back into the MSRP session.
func ExampleNewDeliveryIMDN() {
	im, err := cpim.Parse([]byte("From: <sip:rcs@example.net>\r\n" +
		"To: <sip:pager@example.com>\r\n" +
		"DateTime: 2024-03-01T09:59:58.000Z\r\n" +
		"NS: imdn <urn:ietf:params:imdn>\r\n" +
		"imdn.Message-ID: Hk3j9DkxA0\r\n" +
		"imdn.Disposition-Notification: positive-delivery, display\r\n" +
		"\r\n" +
		"Content-Type: text/plain\r\n" +
		"\r\n" +
		"Hi pager"))
	if err != nil {
		fmt.Println(err)
		return
	}
	if !im.Wants(cpim.PositiveDelivery) {
		return
	}
	imdn, err := cpim.NewDeliveryIMDN(im, cpim.StatusDelivered, time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("From:", imdn.Get("From"))
	fmt.Println("To:", imdn.Get("To"))
	fmt.Println("fresh Message-ID:", imdn.IMDNMessageID() != im.IMDNMessageID())
	fmt.Println("control payload:", imdn.IsControl())
	fmt.Print(strings.ReplaceAll(string(imdn.Body), "\r\n", "\n"))
	// Output:
	// From: <sip:pager@example.com>
	// To: <sip:rcs@example.net>
	// fresh Message-ID: true
	// control payload: true
	// <?xml version="1.0" encoding="UTF-8"?>
	// <imdn xmlns="urn:ietf:params:xml:ns:imdn">
	// <message-id>Hk3j9DkxA0</message-id>
	// <datetime>2024-03-01T09:59:58.000Z</datetime>
	// <recipient-uri>sip:pager@example.com</recipient-uri>
	// <delivery-notification><status><delivered/></status></delivery-notification>
	// </imdn>
}
