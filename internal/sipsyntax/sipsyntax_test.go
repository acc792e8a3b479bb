package sipsyntax

import "testing"

func TestIsToken(t *testing.T) {
	for s, want := range map[string]bool{
		"text": true, "X-Custom.Header_1": true, "-.!%*_+`'~": true, "a1B2": true,
		"": false, "text/plain": false, "a b": false, "a;b": false, "é": false, "a\"b": false, "a:b": false,
	} {
		if got := IsToken(s); got != want {
			t.Errorf("IsToken(%q) = %v, want %v", s, got, want)
		}
	}
}
