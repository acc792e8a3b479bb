package gateway

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestEndReasonsDocumented: every reason a session can end with (the `reason` of the `session ended` log line,
// of the session_ended event and of msrpgw_sessions_ended_total) is named in docs/OPERATIONS.md's list, so an
// operator who sees one can look it up. The reasons are the literals this package passes when it ends a
// session.
func TestEndReasonsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/OPERATIONS.md")
	if err != nil {
		t.Fatal(err)
	}
	_, list, ok := strings.Cut(string(doc), "The `reason` of `session ended`")
	if !ok {
		t.Fatal("docs/OPERATIONS.md has no list of the reasons of `session ended`")
	}
	list, _, _ = strings.Cut(list, "```")
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	// endSession(s, "bye", …), ending{reason: "replaced", …}, and the timers' reason, at = "max_duration", t.
	re := regexp.MustCompile(`(?:endSession\([^,()]+, |ending\{reason: |reason(?:, at)? :?= )"([a-z_]+)"`)
	found := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllSubmatch(src, -1) {
			found[string(m[1])] = true
		}
	}
	if len(found) < 10 {
		t.Fatalf("found only %d end reasons in the source (%v): the pattern no longer matches how sessions end", len(found), found)
	}
	for r := range found {
		if !strings.Contains(list, "`"+r+"`") {
			t.Errorf("session end reason %q is not in docs/OPERATIONS.md's list", r)
		}
	}
}
