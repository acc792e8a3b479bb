package gateway

import (
	"sync"
	"testing"
	"time"

	"github.com/msrpgw/msrpgw/internal/testpeer"
)

// holdingTable is the in-memory table whose Delete waits until release is closed: a session that is ending
// stays in the table, as it does for a moment in every end (end.go).
type holdingTable struct {
	*memTable
	deleting chan struct{}
	release  chan struct{}
}

func (t *holdingTable) Delete(s *Session) bool {
	select {
	case t.deleting <- struct{}{}:
	default:
	}
	<-t.release
	return t.memTable.Delete(s)
}

// A page-mode isComposing never creates a session (SPEC §3.1), also when the one session its key had is
// ending: the table still holds it then, but it is no live session to tell, and the indication must not set up
// a new one.
func TestIsComposingDoesNotReplaceEndingSession(t *testing.T) {
	tbl := &holdingTable{memTable: newMemTable(), deleting: make(chan struct{}, 1), release: make(chan struct{})}
	h := newHarnessWith(t, nil, Options{Table: tbl})
	var once sync.Once
	release := func() { once.Do(func() { close(tbl.release) }) }
	t.Cleanup(release) // before the gateway's Close, which ends what is left
	alice := testpeer.NewPhone(t, "iscend-alice")
	bob := testpeer.NewClient(t, "iscend-bob")
	alice.Send(h.udp(), bob.URI, "text/plain", "hi")
	cs := bob.WaitInvite()
	cs.Recv()
	key := bob.URI + ":" + alice.URI
	go h.gw.EndSession(key)
	select {
	case <-tbl.deleting: // the session is ending, still in the table
	case <-time.After(waitFor):
		t.Fatal("the session did not end")
	}
	res := alice.Send(h.udp(), bob.URI, "application/im-iscomposing+xml", `<?xml version="1.0"?><isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state></isComposing>`)
	if res.StatusCode/100 != 2 {
		t.Fatalf("isComposing answered %d %s, want 2xx", res.StatusCode, res.Reason)
	}
	for _, s := range h.gw.Sessions() {
		if s.State != "ending" {
			t.Errorf("isComposing made a session: %+v", s)
		}
	}
	release()
	select {
	case cs2 := <-bob.Invites():
		t.Fatalf("isComposing set up a session: INVITE %s", cs2.CallID)
	case <-time.After(300 * time.Millisecond):
	}
}
