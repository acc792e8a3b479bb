package sdp

import "testing"

func TestAnswerSetup(t *testing.T) {
	tests := []struct {
		offer    string
		answer   string
		weActive bool
	}{
		{"actpass", "passive", false},
		{"active", "passive", false},
		{"passive", "active", true},
		{"", "passive", false},
		{"holdconn", "passive", false},
		{"PASSIVE", "active", true},
		{" actpass ", "passive", false},
	}
	for _, tt := range tests {
		answer, weActive := AnswerSetup(tt.offer)
		if answer != tt.answer || weActive != tt.weActive {
			t.Errorf("AnswerSetup(%q) = %q, %v; want %q, %v", tt.offer, answer, weActive, tt.answer, tt.weActive)
		}
	}
}

func TestOffererActive(t *testing.T) {
	tests := []struct {
		answer string
		want   bool
	}{
		{"active", false},
		{"Active", false},
		{"passive", true},
		{"", true},
		{"actpass", true},
	}
	for _, tt := range tests {
		if got := OffererActive(tt.answer); got != tt.want {
			t.Errorf("OffererActive(%q) = %v, want %v", tt.answer, got, tt.want)
		}
	}
}
