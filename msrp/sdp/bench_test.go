package sdp

import "testing"

func BenchmarkParse(b *testing.B) {
	body := readVector(b, "rcs-offer-actpass.sdp")
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := Parse(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshal(b *testing.B) {
	m := Media{Host: "127.0.0.1", Port: 2855, Path: []string{"msrp://127.0.0.1:2855/s8a7d6f5kd83jdh3abcd;tcp"},
		AcceptTypes:        []string{"message/cpim", "text/plain", "application/im-iscomposing+xml"},
		AcceptWrappedTypes: []string{"text/plain", "message/imdn+xml", "application/im-iscomposing+xml"},
		MaxSize:            32768, Setup: "actpass"}
	b.ReportAllocs()
	for b.Loop() {
		_ = m.Marshal(3826345123, 1)
	}
}
