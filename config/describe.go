package config

import (
	"fmt"
	"slices"
	"strings"
)

// Describe is what `msrpgw check` prints for a valid configuration: where the gateway listens and what it
// advertises, then the keys that do not take effect in this version. The text is stable (no map order, no
// times) so that scripts and tests may compare it.
func (c *Config) Describe() string {
	var b strings.Builder
	line := func(label, value string) { fmt.Fprintf(&b, "%-20s %s\n", label+":", value) }

	listeners := make([]string, len(c.SIP.Listen))
	for i, l := range c.SIP.Listen {
		listeners[i] = l.String()
	}
	line("SIP listen", orNone(strings.Join(listeners, ", ")))
	line("SIP contact", c.SIP.Contact)
	if w := c.ContactWarning(); w != "" {
		line("Warning", w)
	}
	if c.SIP.OutboundProxy == "" {
		line("SIP outbound proxy", "none (requests go to the Request-URI's host)")
	} else {
		line("SIP outbound proxy", c.SIP.OutboundProxy)
	}
	line("MSRP listen", c.MSRP.Listen)
	if hp, err := c.MSRP.PathHostPort(); err == nil {
		scheme := "msrp"
		if secure, _, _ := c.MSRP.ListenAddr(); secure {
			scheme = "msrps"
		}
		line("MSRP a=path", fmt.Sprintf("%s://%s/<session-id>;tcp", scheme, hp))
	} else {
		line("MSRP a=path", "invalid: "+err.Error())
	}
	keys := c.NotEffective()
	admin := "off"
	if c.Admin.Listen != "" {
		admin = "http://" + c.Admin.Listen
	}
	if slices.Contains(keys, "admin.listen") {
		admin += " (not yet effective)"
	}
	line("Admin listen", admin)
	if len(keys) == 0 {
		b.WriteString("Every key takes effect.\n")
		return b.String()
	}
	b.WriteString("Not yet effective in this version (accepted at their defaults only):\n")
	for _, k := range keys {
		if note := effectiveNote(k); note != "" {
			fmt.Fprintf(&b, "  %s (%s)\n", k, note)
		} else {
			fmt.Fprintf(&b, "  %s\n", k)
		}
	}
	return b.String()
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
