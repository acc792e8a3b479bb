package cpim

import "testing"

func BenchmarkParse(b *testing.B) {
	doc := readVector(b, "rfc5438-7.1.1.3.cpim")
	b.ReportAllocs()
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		if _, err := Parse(doc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWrapMarshal(b *testing.B) {
	body := []byte("Hello Bob, this is a message of ordinary length.")
	opts := WrapOptions{From: "sip:alice@example.com", To: "sip:bob@example.com", IMDN: true, Disposition: []string{PositiveDelivery}}
	b.ReportAllocs()
	for b.Loop() {
		_ = Wrap("text/plain;charset=UTF-8", body, opts).Marshal()
	}
}
