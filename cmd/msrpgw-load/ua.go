package main

import (
	"fmt"
	"net"
	"strings"

	"github.com/emiago/sipgo"

	"github.com/msrpgw/msrpgw/internal/rawio"
)

// sipUA is a sipgo user agent serving UDP and TCP on one ephemeral 127.0.0.1 port, as a phone listens (a
// gateway moves large MESSAGEs to TCP, RFC 3428 §8).
type sipUA struct {
	ua     *sipgo.UserAgent
	srv    *sipgo.Server
	client *sipgo.Client
	pc     net.PacketConn
	ln     net.Listener
	addr   string // 127.0.0.1:port
}

// newSIPUA binds the ports and lets register install handlers (and wrap pc) before the first packet can
// arrive; then it serves.
func newSIPUA(name string, register func(u *sipUA)) (*sipUA, error) {
	ua, err := sipgo.NewUA(sipgo.WithUserAgent(name))
	if err != nil {
		return nil, fmt.Errorf("sipgo UA %s: %w", name, err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		ua.Close()
		return nil, fmt.Errorf("sipgo server %s: %w", name, err)
	}
	u := &sipUA{ua: ua, srv: srv}
	for attempt := 0; ; attempt++ {
		if u.pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			ua.Close()
			return nil, fmt.Errorf("bind UDP 127.0.0.1:0 for %s: %w", name, err)
		}
		if u.ln, err = net.Listen("tcp", u.pc.LocalAddr().String()); err == nil {
			break
		}
		u.pc.Close()
		if attempt == 20 {
			ua.Close()
			return nil, fmt.Errorf("bind TCP next to UDP %s for %s: %w", u.pc.LocalAddr(), name, err)
		}
	}
	if uc, ok := u.pc.(*net.UDPConn); ok {
		uc.SetReadBuffer(4 << 20) // as the gateway does: no drops while a burst waits to be read
	}
	// Raw socket calls, as the gateway makes them (internal/rawio): through the net package each sendto and
	// recvfrom goes through the scheduler's system-call hooks, which keep the runtime's monitor thread
	// polling, CPU the tool takes from the gateway on the same cores (A/B: 0.5–1 s less tool CPU per 8 s run).
	u.pc = rawio.WrapPacketConn(u.pc)
	u.addr = u.pc.LocalAddr().String()
	if u.client, err = sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1")); err != nil {
		u.close()
		return nil, fmt.Errorf("sipgo client %s: %w", name, err)
	}
	register(u)
	go srv.ServeUDP(u.pc)
	go srv.ServeTCP(u.ln)
	return u, nil
}

// uri is the address-of-record of user on this UA, with ;transport=tcp when the run uses TCP so that the
// gateway's requests towards it (INVITE, MESSAGE) take TCP as well.
func (u *sipUA) uri(user, transport string) string {
	s := "sip:" + user + "@" + u.addr
	if strings.EqualFold(transport, "tcp") {
		s += ";transport=tcp"
	}
	return s
}

func (u *sipUA) close() {
	u.pc.Close()
	u.ln.Close()
	u.ua.Close()
}
