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

func TestReanswerSetup(t *testing.T) {
	tests := []struct {
		offer    string
		weActive bool
		answer   string
		active   bool
	}{
		{"actpass", true, "active", true}, // we connected: we stay active
		{"actpass", false, "passive", false},
		{" ActPass ", true, "active", true},
		{"active", true, "passive", false},
		{"active", false, "passive", false},
		{"passive", false, "active", true},
		{"passive", true, "active", true},
		{"", true, "passive", false}, // absent: the offerer (the peer) connects
		{"holdconn", true, "passive", false},
	}
	for _, tt := range tests {
		answer, active := ReanswerSetup(tt.offer, tt.weActive)
		if answer != tt.answer || active != tt.active {
			t.Errorf("ReanswerSetup(%q, %v) = %q, %v; want %q, %v", tt.offer, tt.weActive, answer, active, tt.answer, tt.active)
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
