package sdp_test

import (
	"fmt"
	"strings"

	"github.com/msrpgw/msrpgw/msrp/sdp"
)

// An RCS offer answered by a gateway that speaks CPIM and plain text.
func Example() {
	offer := []byte("v=0\r\n" +
		"o=- 3826345123 3826345123 IN IP4 10.20.30.40\r\n" +
		"s=-\r\n" +
		"c=IN IP4 10.20.30.40\r\n" +
		"t=0 0\r\n" +
		"m=message 20000 TCP/MSRP *\r\n" +
		"a=accept-types:message/cpim application/im-iscomposing+xml\r\n" +
		"a=accept-wrapped-types:text/plain message/imdn+xml\r\n" +
		"a=setup:actpass\r\n" +
		"a=path:msrp://10.20.30.40:20000/s8a7d6f5;tcp\r\n")
	peer, err := sdp.Parse(offer)
	if err != nil {
		fmt.Println("488:", err)
		return
	}
	setup, weConnect := sdp.AnswerSetup(peer.Setup)
	answer := sdp.Media{
		Host:               "192.0.2.1",
		Port:               2855,
		Path:               []string{"msrp://192.0.2.1:2855/kjhd37s2s20w2a;tcp"},
		AcceptTypes:        sdp.Common([]string{"message/cpim", "text/plain", "application/im-iscomposing+xml"}, peer.AcceptTypes),
		AcceptWrappedTypes: []string{"text/plain", "message/imdn+xml"},
		MaxSize:            32768,
		Setup:              setup,
	}
	fmt.Println("peer path:", peer.Path[0])
	fmt.Println("we connect:", weConnect)
	fmt.Println("text/plain needs CPIM:", !sdp.Match(peer.AcceptTypes, "text/plain"))
	fmt.Print(strings.ReplaceAll(string(answer.Marshal(1, 1)), "\r\n", "\n")) // CRLF on the wire
	// Output:
	// peer path: msrp://10.20.30.40:20000/s8a7d6f5;tcp
	// we connect: false
	// text/plain needs CPIM: true
	// v=0
	// o=- 1 1 IN IP4 192.0.2.1
	// s=-
	// c=IN IP4 192.0.2.1
	// t=0 0
	// m=message 2855 TCP/MSRP *
	// a=accept-types:message/cpim application/im-iscomposing+xml
	// a=accept-wrapped-types:text/plain message/imdn+xml
	// a=max-size:32768
	// a=setup:passive
	// a=path:msrp://192.0.2.1:2855/kjhd37s2s20w2a;tcp
}

// SplitBody takes the SDP out of an RCS INVITE whose body also carries the first message.
func ExampleSplitBody() {
	body := []byte("--b1\r\n" +
		"Content-Type: application/sdp\r\n\r\n" +
		"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n" +
		"m=message 9 TCP/MSRP *\r\na=accept-types:message/cpim\r\na=setup:active\r\n" +
		"a=path:msrp://10.0.0.1:9/x;tcp\r\n" +
		"\r\n--b1\r\n" +
		"Content-Type: message/cpim\r\n\r\n" +
		"From: <sip:anonymous@anonymous.invalid>\r\nTo: <sip:anonymous@anonymous.invalid>\r\n\r\n" +
		"Content-Type: text/plain\r\n\r\nHi\r\n--b1--\r\n")
	sdpBody, others, err := sdp.SplitBody("multipart/mixed; boundary=b1", body)
	if err != nil {
		fmt.Println(err)
		return
	}
	m, err := sdp.Parse(sdpBody)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.Port, m.Setup, sdp.OffererActive(m.Setup))
	fmt.Println(others[0].ContentType, len(others[0].Body))
	// Output:
	// 9 active false
	// message/cpim 112
}
