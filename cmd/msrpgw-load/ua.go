package main

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

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

	closeOnce sync.Once
}

// newSIPUA binds the ports and lets register install handlers (and wrap pc) before the first packet can
// arrive; then it serves.
func newSIPUA(name string, register func(u *sipUA), opts ...sipgo.UserAgentOption) (*sipUA, error) {
	ua, err := sipgo.NewUA(append([]sipgo.UserAgentOption{sipgo.WithUserAgent(name)}, opts...)...)
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
	served := make(chan error, 1)
	go func() { served <- srv.ServeUDP(u.pc) }()
	go srv.ServeTCP(u.ln)
	if err := u.waitServing(served); err != nil {
		u.close()
		return nil, err
	}
	return u, nil
}

// waitServing returns once sipgo has the UDP listener in its connection pool.
//
// ServeUDP puts it there when its goroutine runs. A request sent out of this socket before that (the phones
// send with Laddr set to it, page.go) finds no connection for its Laddr, so sipgo binds a new socket to the
// same address and fails: "client transcation failed to request connection: listen udp 127.0.0.1:P: bind:
// address already in use". That was the occasional setup failure of -setup message, whose warm-up MESSAGEs
// are the UA's first requests and go out at once (up to hundreds failed when the goroutine ran late on busy
// cores); session-first runs send from the phones only after the setups.
func (u *sipUA) waitServing(served <-chan error) error {
	tl := u.ua.TransportLayer()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if c, err := tl.GetConnection("udp", u.addr); err == nil {
			c.TryClose() // GetConnection took a reference; a listener's is only counted, never closed by it
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sipgo did not start serving UDP %s", u.addr)
		}
		select {
		case err := <-served:
			return fmt.Errorf("serve UDP %s: ended at once: %v", u.addr, err)
		case <-time.After(time.Millisecond):
		}
	}
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

// close closes the UA's sockets and connections; it may be called again.
func (u *sipUA) close() {
	u.closeOnce.Do(func() {
		u.pc.Close()
		u.ln.Close()
		u.ua.Close()
	})
}
