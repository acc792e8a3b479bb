// Package config is msrpgw's configuration: the YAML model of SPEC §6, its embedded defaults, validation, and
// the OpenSIPS-style variable templates ($fu, $tu, $hdr(Name) …) that render correlation keys, MESSAGE-side
// coordinates and notification bodies.
//
// A file is read over the defaults (a key it leaves out keeps its default), unknown keys are refused with
// their line, and the result is validated; errors name the key and, where the file has one, its line and
// column. The templates are compiled by Validate (which Parse, Load and Default call) and reached through
// the rules' accessors, e.g. c.Gateway.Answer.KeyTemplate(), so nothing is compiled per request.
//
// See REFERENCE.md for every key, its default and its meaning.
package config

import (
	_ "embed"
	"fmt"
	"net/netip"
	"os"
	"time"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns the embedded default configuration file, comments included: what the gateway runs on
// without -config.
func DefaultYAML() []byte {
	return append([]byte(nil), defaultYAML...)
}

// Config is the whole configuration file.
type Config struct {
	SIP     SIP     `yaml:"sip"`
	MSRP    MSRP    `yaml:"msrp"`
	Gateway Gateway `yaml:"gateway"`
	Admin   Admin   `yaml:"admin"`
	Limits  Limits  `yaml:"limits"`
	Log     Log     `yaml:"log"`
	Events  Events  `yaml:"events"`

	// pos maps key paths ("gateway.answer.key", "sip.listen[1]") to where the file set them, so that
	// Validate can say where a problem is. Nil for a Config not read from a file.
	pos positions
}

// SIP is the SIP user agent: listeners, identity, trust and credentials.
type SIP struct {
	Listen        []Listen       `yaml:"listen"`
	Contact       string         `yaml:"contact"`
	OutboundProxy string         `yaml:"outbound_proxy"`
	Trusted       []netip.Prefix `yaml:"trusted"` // a bare IP in the file means /32 or /128
	Credentials   []Credential   `yaml:"credentials"`
	Auth          SIPAuth        `yaml:"auth"`
	TLS           TLS            `yaml:"tls"`
}

// Credential answers 401/407 digest challenges to the gateway's own requests.
type Credential struct {
	Realm    string `yaml:"realm"`
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

// SIPAuth is optional digest authentication of inbound requests.
type SIPAuth struct {
	Realm     string `yaml:"realm"`
	UsersFile string `yaml:"users_file"`
}

// TLS names certificate files. ClientCA is used by the SIP listener only.
type TLS struct {
	Cert     string `yaml:"cert"`
	Key      string `yaml:"key"`
	ClientCA string `yaml:"client_ca,omitempty"`
}

// MSRP is the MSRP endpoint.
type MSRP struct {
	Listen             string        `yaml:"listen"`    // msrp://HOST:PORT;tcp or msrps://HOST:PORT;tcp
	Advertise          string        `yaml:"advertise"` // HOST:PORT for a=path, when it differs from Listen
	ChunkSize          int           `yaml:"chunk_size"`
	TransactionTimeout time.Duration `yaml:"transaction_timeout"`
	UnboundTimeout     time.Duration `yaml:"unbound_timeout"`
	CheckFromPath      bool          `yaml:"check_from_path"`
	KeepAlive          time.Duration `yaml:"keepalive"` // 0 = off: quiet connections get bodiless SENDs
	TLS                TLS           `yaml:"tls"`
}

// Gateway is the behaviour of the gateway proper: timers, sizes and the two rules.
type Gateway struct {
	MessageTimeout  time.Duration `yaml:"message_timeout"`
	SessionTimeout  time.Duration `yaml:"session_timeout"`
	MaxDuration     time.Duration `yaml:"max_duration"` // 0 = no limit
	SetupTimeout    time.Duration `yaml:"setup_timeout"`
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	MaxMessageSize  int64         `yaml:"max_message_size"`
	ForwardControl  bool          `yaml:"forward_control"`
	CPIMPassthrough bool          `yaml:"cpim_passthrough"`
	Answer          AnswerRule    `yaml:"answer"`
	Message         MessageRule   `yaml:"message"`
	SetupFailed     Notify        `yaml:"setup_failed"`
	FailureNotify   Notify        `yaml:"failure_notify"`
	IMDN            IMDN          `yaml:"imdn"`
}

// AnswerRule handles an INVITE from the session-mode side (the reference's msrp_gw_answer). Key, From, To
// and RURI are templates over RequestVars.
type AnswerRule struct {
	Key                string   `yaml:"key"`
	AcceptTypes        []string `yaml:"accept_types"`
	AcceptWrappedTypes []string `yaml:"accept_wrapped_types"`
	From               string   `yaml:"from"`
	To                 string   `yaml:"to"`
	RURI               string   `yaml:"ruri"`

	key, from, to, ruri *Template
}

// KeyTemplate is Key compiled by Validate; nil before Validate ran.
func (r *AnswerRule) KeyTemplate() *Template { return r.key }

// FromTemplate is From compiled by Validate; nil before Validate ran.
func (r *AnswerRule) FromTemplate() *Template { return r.from }

// ToTemplate is To compiled by Validate; nil before Validate ran.
func (r *AnswerRule) ToTemplate() *Template { return r.to }

// RURITemplate is RURI compiled by Validate; nil before Validate ran.
func (r *AnswerRule) RURITemplate() *Template { return r.ruri }

// MessageRule handles a MESSAGE from the page-mode side (the reference's msg_to_msrp). Key is a template
// over RequestVars.
type MessageRule struct {
	Key                string        `yaml:"key"`
	AcceptTypes        []string      `yaml:"accept_types"`
	AcceptWrappedTypes []string      `yaml:"accept_wrapped_types"`
	InviteHeaders      []string      `yaml:"invite_headers"` // "Name: value", added to generated INVITEs
	ContactParams      string        `yaml:"contact_params"`
	Reply              string        `yaml:"reply"` // ReplyWait, ReplyAccept or ReplyOK
	ReplyWait          time.Duration `yaml:"reply_wait"`

	key *Template
}

// KeyTemplate is Key compiled by Validate; nil before Validate ran.
func (r *MessageRule) KeyTemplate() *Template { return r.key }

// The values of gateway.message.reply (SPEC §5).
const (
	ReplyWait   = "wait"   // hold the MESSAGE until the MSRP side answered, at most reply_wait
	ReplyAccept = "accept" // 202 at once
	ReplyOK     = "ok"     // 200 at once, as the reference does
)

// Notify is a notification MESSAGE to the page-mode user. Body is a template over NotifyVars.
type Notify struct {
	Notify bool   `yaml:"notify"`
	Body   string `yaml:"body"`

	body *Template
}

// BodyTemplate is Body compiled by Validate; nil before Validate ran.
func (n *Notify) BodyTemplate() *Template { return n.body }

// IMDN is the RFC 5438 behaviour when the gateway terminates CPIM.
type IMDN struct {
	DeliveredOn200 bool `yaml:"delivered_on_200"`
	Request        bool `yaml:"request"`
}

// Admin is the HTTP admin API.
type Admin struct {
	Listen string `yaml:"listen"`
	Token  string `yaml:"token"`
	Pprof  bool   `yaml:"pprof"`
}

// Limits are the bounds of SPEC §8. The defaults let the load targets run unchanged from one source address.
type Limits struct {
	MaxSessions          int           `yaml:"max_sessions"`
	MaxSessionsPerSource int           `yaml:"max_sessions_per_source"`
	MaxQueuedPerSession  int           `yaml:"max_queued_per_session"`
	MaxQueuedTotal       int           `yaml:"max_queued_total"`
	MaxConns             int           `yaml:"max_conns"`
	MaxConnsPerSource    int           `yaml:"max_conns_per_source"`
	MaxHeaderBytes       int           `yaml:"max_header_bytes"`
	MaxChunksPerMessage  int           `yaml:"max_chunks_per_message"`
	MaxPartialPerSession int           `yaml:"max_partial_per_session"`
	MaxSIPHandlers       int           `yaml:"max_sip_handlers"`
	MaxSIPConns          int           `yaml:"max_sip_conns"`
	MaxSIPConnsPerSource int           `yaml:"max_sip_conns_per_source"`
	SIPConnIdleTimeout   time.Duration `yaml:"sip_conn_idle_timeout"`
	RetryAfter           time.Duration `yaml:"retry_after"`
}

// Log is the slog handler's configuration.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
}

// Events configures where events go besides metrics and logs.
type Events struct {
	Webhooks []Webhook `yaml:"webhooks"`
}

// Webhook posts events as JSON to URL. Events lists the event names to post; empty means all of them.
type Webhook struct {
	URL    string   `yaml:"url"`
	Events []string `yaml:"events"`
}

// WebhookEvents are the event names a webhook may subscribe to (SPEC §5, §7).
func WebhookEvents() []string {
	return []string{"setup_failed", "session_started", "session_ended", "message_failed"}
}

// Default returns the embedded default configuration, validated (its templates compiled).
func Default() *Config {
	c, err := Parse(nil)
	if err != nil {
		// The embedded file is part of the binary and tested; failing here is a build defect.
		panic(fmt.Sprintf("config: embedded default.yaml is invalid: %v", err))
	}
	return c
}

// Load reads and parses the file at path (see Parse).
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse reads data over the defaults, refuses unknown keys and values of the wrong type (with key, line and
// column), then runs Validate. Empty data gives the defaults.
func Parse(data []byte) (*Config, error) {
	c, err := decodeDefault()
	if err != nil {
		return nil, err
	}
	pos, err := decodeOver(c, data)
	if err != nil {
		return nil, err
	}
	c.pos = pos
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// decodeDefault decodes the embedded defaults without validating them (Validate compares against them).
func decodeDefault() (*Config, error) {
	c := &Config{}
	if _, err := decodeOver(c, defaultYAML); err != nil {
		return nil, fmt.Errorf("embedded default.yaml: %w", err)
	}
	return c, nil
}
