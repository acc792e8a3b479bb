package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// Errors the Client returns for answers callers branch on; they wrap the server's message.
var (
	ErrNotFound     = errors.New("no such session")
	ErrUnauthorized = errors.New("admin API refused the request (401): missing or wrong token")
)

// Client talks to the admin API; it is what `msrpgw sessions` uses.
type Client struct {
	BaseURL string       // e.g. http://127.0.0.1:8080; a bare host:port (admin.listen) is accepted too
	Token   string       // bearer token, when admin.token is set
	HTTP    *http.Client // nil: http.DefaultClient
}

// List returns every session.
func (c *Client) List(ctx context.Context) ([]Session, error) {
	var ss []Session
	if err := c.do(ctx, http.MethodGet, "/api/sessions", &ss); err != nil {
		return nil, err
	}
	return ss, nil
}

// Show returns one session; the error wraps ErrNotFound when there is none.
func (c *Client) Show(ctx context.Context, key string) (Session, error) {
	var s Session
	if err := c.do(ctx, http.MethodGet, SessionPath(key), &s); err != nil {
		return Session{}, keyed(err, key)
	}
	return s, nil
}

// End ends one session with BYE; the error wraps ErrNotFound when there is none.
func (c *Client) End(ctx context.Context, key string) error {
	return keyed(c.do(ctx, http.MethodDelete, SessionPath(key), nil), key)
}

// keyed names the key in a not-found error; the server's own wording would only repeat it.
func keyed(err error, key string) error {
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w with key %q", ErrNotFound, key)
	}
	return err
}

// Drain asks the gateway to start a graceful drain.
func (c *Client) Drain(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/api/drain", nil)
}

func (c *Client) do(ctx context.Context, method, path string, out any) error {
	base, err := NormalizeAdminURL(c.BaseURL)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, nil)
	if err != nil {
		return fmt.Errorf("admin request %s %s: %w", method, base+path, err)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	req.Header.Set("Accept", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the admin API at %s: %w", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return answerError(method, path, resp)
	}
	if out == nil {
		return nil
	}
	// A listing grows with the sessions (limits.max_sessions), so it is decoded as it streams in, unbounded.
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("admin API answer to %s %s is not the expected JSON: %w", method, path, err)
	}
	return nil
}

// answerError turns a non-2xx answer into the error the CLI prints. Only the admin API's own JSON error makes
// a 404 "no such session": a 404 from anything else (a wrong -admin URL, another service) says so instead.
func answerError(method, path string, resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	msg := strings.TrimSpace(string(body))
	var ae apiError
	fromAPI := json.Unmarshal(body, &ae) == nil && ae.Error != ""
	if fromAPI {
		msg = ae.Error
	}
	switch {
	case resp.StatusCode == http.StatusNotFound && fromAPI:
		return fmt.Errorf("%w: %s", ErrNotFound, msg)
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("admin API answered %s to %s %s (is -admin the gateway's admin URL?): %s", resp.Status, method, path, msg)
	case resp.StatusCode == http.StatusUnauthorized:
		return ErrUnauthorized
	}
	return fmt.Errorf("admin API answered %s to %s %s: %s", resp.Status, method, path, msg)
}

// maxErrorBody bounds what is read of an error answer: it is only printed.
const maxErrorBody = 64 << 10

// NormalizeAdminURL turns what an operator or the config gives (http://h:p, h:p as in admin.listen, :8080,
// 0.0.0.0:8080) into a base URL a client can dial: wildcard and empty hosts become loopback.
func NormalizeAdminURL(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("admin URL is empty")
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("admin URL %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("admin URL %q: scheme must be http or https", s)
	}
	host, port := u.Hostname(), u.Port()
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	if port != "" {
		u.Host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		u.Host = "[" + host + "]"
	} else {
		u.Host = host
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// SessionPath is the API path of one session: its key path-escaped, with a key of "." or ".." written as %2E
// escapes, which path cleaning would otherwise take for the current or parent directory.
func SessionPath(key string) string {
	k := url.PathEscape(key)
	if key == "." || key == ".." {
		k = strings.Repeat("%2E", len(key))
	}
	return "/api/sessions/" + k
}
