package admin

import (
	"net/http/httptest"
	"testing"
	"time"
)

// writeJSONList writes what writeJSON writes for the same list, byte for byte: scripts parse either.
func TestWriteJSONListAsWriteJSON(t *testing.T) {
	at := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	for _, list := range [][]Session{
		nil,
		{},
		{{Key: "a:b", State: "up", Created: at}},
		{{Key: "a:b", State: "up", Created: at}, {Key: "c\"d", State: "setting-up", Created: at.Add(time.Second)}, {Key: "e", State: "ending"}},
	} {
		want, got := httptest.NewRecorder(), httptest.NewRecorder()
		if list == nil {
			writeJSON(want, 200, []Session{})
			writeJSONList(got, []Session{})
		} else {
			writeJSON(want, 200, list)
			writeJSONList(got, list)
		}
		if got.Body.String() != want.Body.String() || got.Code != want.Code || got.Header().Get("Content-Type") != want.Header().Get("Content-Type") {
			t.Fatalf("%d sessions: writeJSONList wrote %d %q\n%s\nwriteJSON %d %q\n%s", len(list), got.Code, got.Header().Get("Content-Type"), got.Body, want.Code, want.Header().Get("Content-Type"), want.Body)
		}
	}
}
