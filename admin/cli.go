package admin

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// cliTimeout bounds one CLI command, so a hung admin server never hangs a script.
const cliTimeout = 10 * time.Second

const sessionsUsage = `usage: msrpgw sessions list|show KEY|end KEY [-admin URL] [-token T] [-json] [-config FILE]

  list       every gateway session, oldest first
  show KEY   one session (KEY as the API shows it, e.g. sip:bob@b.example:sip:alice@a.example)
  end KEY    end one session (BYE to the session-mode side)

flags:
  -config FILE
    	the gateway's config, whose admin.listen and admin.token are -admin's and -token's defaults (default: the embedded one)
`

// RunSessions runs `msrpgw sessions ...` (args are what follows "sessions") and returns the process exit code:
// 0 success, 1 the command failed (no such session, admin API unreachable or refusing), 2 usage error.
// defaultURL and defaultToken come from the config (admin.listen, admin.token); an empty defaultURL means the
// config has the admin API off, and then -admin is needed.
func RunSessions(args []string, defaultURL, defaultToken string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("msrpgw sessions", flag.ContinueOnError)
	fs.SetOutput(stderr)
	adminURL := fs.String("admin", defaultURL, "admin API base URL (default from admin.listen)")
	// The config's token is applied after parsing, so -h never prints it.
	token := fs.String("token", "", "admin bearer token (default from admin.token)")
	asJSON := fs.Bool("json", false, "print the API's JSON instead of a table")
	fs.Usage = func() {
		fmt.Fprint(stderr, sessionsUsage)
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2 // flag already printed what was wrong and the usage
	}
	if len(pos) == 0 {
		fmt.Fprintln(stderr, "msrpgw sessions: missing command (list, show or end)")
		fs.Usage()
		return 2
	}
	cmd, rest := pos[0], pos[1:]
	want := map[string]int{"list": 0, "show": 1, "end": 1}
	n, ok := want[cmd]
	if !ok {
		fmt.Fprintf(stderr, "msrpgw sessions: unknown command %q (want list, show or end)\n", cmd)
		fs.Usage()
		return 2
	}
	if len(rest) != n {
		if n == 0 {
			fmt.Fprintf(stderr, "msrpgw sessions %s: takes no arguments, got %q\n", cmd, rest)
		} else {
			fmt.Fprintf(stderr, "msrpgw sessions %s: needs exactly one KEY, got %d arguments\n", cmd, len(rest))
		}
		return 2
	}

	if *adminURL == "" {
		fmt.Fprintln(stderr, "msrpgw sessions: admin.listen is empty (the admin API is off); pass -admin URL")
		return 1
	}
	if *token == "" {
		*token = defaultToken
	}
	c := &Client{BaseURL: *adminURL, Token: *token, HTTP: &http.Client{Timeout: cliTimeout}}
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	switch cmd {
	case "list":
		ss, err := c.List(ctx)
		if err != nil {
			return fail(stderr, err)
		}
		if *asJSON {
			return printJSON(stdout, stderr, ss)
		}
		printTable(stdout, ss, time.Now())
	case "show":
		s, err := c.Show(ctx, rest[0])
		if err != nil {
			return fail(stderr, err)
		}
		if *asJSON {
			return printJSON(stdout, stderr, s)
		}
		printSession(stdout, s, time.Now())
	case "end":
		if err := c.End(ctx, rest[0]); err != nil {
			return fail(stderr, err)
		}
		if *asJSON {
			return printJSON(stdout, stderr, map[string]any{"key": rest[0], "ended": true})
		}
		fmt.Fprintf(stdout, "session %s ended\n", rest[0])
	}
	return 0
}

// parseInterspersed lets flags come before, between or after the positional arguments
// (`sessions show KEY -json` and `sessions -json show KEY` both work), which the flag package alone does not.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func fail(stderr io.Writer, err error) int {
	switch {
	case errors.Is(err, ErrNotFound):
		fmt.Fprintf(stderr, "msrpgw: %v\n", err)
	case errors.Is(err, ErrUnauthorized):
		fmt.Fprintf(stderr, "msrpgw: %v; pass -token or set admin.token\n", err)
	default:
		fmt.Fprintf(stderr, "msrpgw: %v\n", err)
	}
	return 1
}

func printJSON(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(stderr, "msrpgw: writing JSON: %v\n", err)
		return 1
	}
	return 0
}

// printTable writes one aligned line per session.
func printTable(w io.Writer, ss []Session, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tSTATE\tORIGIN\tMSRP SESSION\tAGE\tIDLE\tQUEUED\tTO MSRP\tTO SIP")
	for _, s := range ss {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\n",
			s.Key, dash(s.State), dash(s.Origin), dash(s.MSRPSessionID),
			since(now, s.Created), since(now, latest(s.Created, s.LastMessage, s.LastSend)),
			s.Queued, s.MessagesToMSRP, s.MessagesToSIP)
	}
	_ = tw.Flush()
	if len(ss) == 0 {
		fmt.Fprintln(w, "(no sessions)")
	}
}

// printSession writes one session as aligned "field: value" lines.
func printSession(w io.Writer, s Session, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	at := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.Local().Format(time.RFC3339) + " (" + since(now, t) + " ago)"
	}
	row("Key", s.Key)
	row("State", dash(s.State))
	row("Origin", dash(s.Origin))
	row("MESSAGE side From", dash(s.MsgSideFrom))
	row("MESSAGE side To", dash(s.MsgSideTo))
	row("MESSAGE side R-URI", dash(s.MsgSideRURI))
	row("MSRP session-id", dash(s.MSRPSessionID))
	row("MSRP peer path", dash(s.MSRPPeerPath))
	row("Call-ID", dash(s.CallID))
	row("Created", at(s.Created))
	row("Last MESSAGE", at(s.LastMessage))
	row("Last SEND", at(s.LastSend))
	row("Queued", strconv.Itoa(s.Queued))
	row("Messages to MSRP", strconv.FormatUint(s.MessagesToMSRP, 10))
	row("Messages to SIP", strconv.FormatUint(s.MessagesToSIP, 10))
	_ = tw.Flush()
}

func dash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}

func latest(ts ...time.Time) time.Time {
	var l time.Time
	for _, t := range ts {
		if t.After(l) {
			l = t
		}
	}
	return l
}

// since renders an age compactly (1h2m, 45s); "-" for an unknown time.
func since(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Hour:
		return d.Truncate(time.Second).String()
	case d < 48*time.Hour:
		return strings.TrimSuffix(d.Truncate(time.Minute).String(), "0s")
	}
	days := d / (24 * time.Hour)
	return strconv.Itoa(int(days)) + "d" + strconv.Itoa(int((d-days*24*time.Hour)/time.Hour)) + "h"
}
