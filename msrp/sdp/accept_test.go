package sdp

import (
	"reflect"
	"testing"
)

func TestMatch(t *testing.T) {
	rcs := []string{"message/cpim", "application/im-iscomposing+xml"}
	tests := []struct {
		accepted []string
		ct       string
		want     bool
	}{
		{[]string{"text/plain"}, "text/plain", true},
		{[]string{"text/plain"}, "text/plain; charset=utf-8", true},
		{[]string{"text/plain;charset=utf-8"}, "TEXT/Plain", true},
		{[]string{"text/plain"}, "text/html", false},
		{[]string{"text/*"}, "text/html", true},
		{[]string{"text/*"}, "application/json", false},
		{[]string{"*"}, "application/json", true},
		{[]string{"*"}, "", false},
		{rcs, "text/plain", false},
		{rcs, "Message/CPIM", true},
		{rcs, "application/im-iscomposing+xml", true},
		{nil, "text/plain", false},
		{[]string{"text/plain"}, "text/*", false},
	}
	for _, tt := range tests {
		if got := Match(tt.accepted, tt.ct); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.accepted, tt.ct, got, tt.want)
		}
	}
}

func TestCommon(t *testing.T) {
	ours := []string{"message/cpim", "text/plain", "application/im-iscomposing+xml"}
	tests := []struct {
		name        string
		ours, peers []string
		want        []string
	}{
		{"RCS peer", ours, []string{"message/cpim", "application/im-iscomposing+xml"},
			[]string{"message/cpim", "application/im-iscomposing+xml"}},
		{"plain peer", ours, []string{"text/plain"}, []string{"text/plain"}},
		{"peer wildcard keeps our order", ours, []string{"*"}, ours},
		{"peer type wildcard", ours, []string{"text/*"}, []string{"text/plain"}},
		{"none common", ours, []string{"text/html"}, nil},
		{"our wildcard takes peer's concrete types", []string{"text/*", "message/cpim"}, []string{"text/html", "text/plain", "message/cpim", "image/png"},
			[]string{"text/html", "text/plain", "message/cpim"}},
		{"our * against peer list", []string{"*"}, []string{"text/plain", "text/*"}, []string{"text/plain", "text/*"}},
		{"no repeats", []string{"text/plain", "TEXT/PLAIN;charset=utf-8"}, []string{"text/plain"}, []string{"text/plain"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Common(tt.ours, tt.peers); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Common(%q, %q) = %q, want %q", tt.ours, tt.peers, got, tt.want)
			}
		})
	}
}
