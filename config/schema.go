package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// ErrUnknownKey is wrapped by the error for a key the schema does not have (a typo, usually).
var ErrUnknownKey = errors.New("unknown key")

// KeyError is a problem with one configuration key. Line and Column are where the file sets the key's value
// (0 when the value is a default, or the Config was not read from a file).
type KeyError struct {
	Key    string // e.g. "gateway.session_timeout", "sip.listen[1]"
	Line   int
	Column int
	Err    error
}

// Error implements error.
func (e *KeyError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("key %s (line %d, column %d): %v", e.Key, e.Line, e.Column, e.Err)
	}
	return fmt.Sprintf("key %s: %v", e.Key, e.Err)
}

// Unwrap returns the underlying error.
func (e *KeyError) Unwrap() error { return e.Err }

// position is where a value sits in the file.
type position struct {
	line, column int
	style        yaml.Style
	indent       int    // a literal block scalar's: the column of its text (0 when unknown)
	raw          []byte // a plain or quoted scalar's: the file from its first character (its quote, if any)
}

// positions maps key paths to positions.
type positions map[string]position

// keyError builds a KeyError for key, positioned when the file set it.
func (p positions) keyError(key string, err error) *KeyError {
	ps := p[key]
	return &KeyError{Key: key, Line: ps.line, Column: ps.column, Err: err}
}

// ErrorAt is err about key (e.g. "sip.tls.cert"), with the line and column where the file set key, for a
// problem found outside Validate (a file the key names that cannot be read, say). Without a position (a
// default value, a Config not read from a file) it still names the key.
func (c *Config) ErrorAt(key string, err error) *KeyError {
	return c.pos.keyError(key, err)
}

// Place is ErrorAt for an error whose text starts with the key it is about, as the gateway's do
// ("sip.auth.users_file: open …"): a *KeyError at that key with the rest of the text. Another error is
// returned as it is.
func (c *Config) Place(err error) error {
	var ke *KeyError
	if err == nil || errors.As(err, &ke) {
		return err
	}
	text, best := err.Error(), ""
	for _, key := range schemaKeys() {
		rest, ok := strings.CutPrefix(text, key)
		if ok && len(key) > len(best) && (strings.HasPrefix(rest, ":") || strings.HasPrefix(rest, " ")) {
			best = key
		}
	}
	if best == "" {
		return err
	}
	return c.ErrorAt(best, &keyless{text: strings.TrimLeft(strings.TrimPrefix(text, best), ": "), err: err})
}

// keyless is an error whose text had its key taken off by Place; it unwraps to the error it was.
type keyless struct {
	text string
	err  error
}

func (e *keyless) Error() string { return e.text }
func (e *keyless) Unwrap() error { return e.err }

// templateError places a template compile error, whose Column counts within the template, in the file: a
// plain or quoted scalar is read again from the file (flowScalarPosition); a literal block's lines are the
// file's, below its '|' and indented; for a folded block ('>') the position is its indicator's.
func (p positions) templateError(key string, te *TemplateError, src string) *TemplateError {
	out := &TemplateError{Key: key, Column: te.Column, Msg: te.Msg}
	if ps, ok := p[key]; ok && ps.line > 0 {
		out.Line = ps.line
		// te.Column counts bytes; the file's columns, as YAML gives them, count characters.
		col := te.Column
		if col >= 1 && col <= len(src)+1 {
			col = utf8.RuneCountInString(src[:col-1]) + 1
		}
		switch ps.style {
		case 0, yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
			if ps.raw != nil && te.Column >= 1 {
				out.Line, out.Column = flowScalarPosition(ps.raw, ps.style, ps.line, ps.column, te.Column-1)
				break
			}
			out.Column = ps.column + col - 1
			if ps.style != 0 {
				out.Column++ // after the quote
			}
		case yaml.FlowStyle:
			out.Column = ps.column + col - 1
		case yaml.LiteralStyle:
			if ps.indent > 0 && te.Column <= len(src)+1 {
				before := src[:te.Column-1]
				nl := strings.LastIndexByte(before, '\n')
				out.Line = ps.line + 1 + strings.Count(before, "\n")
				out.Column = ps.indent + utf8.RuneCountInString(before[nl+1:])
				break
			}
			out.Column = ps.column
		default: // folded block: where it starts
			out.Column = ps.column
		}
	}
	return out
}

// flowScalarPosition finds the file line and column of the value byte at offset (from 0) of a plain or quoted
// scalar, raw being the file from the scalar's first character (its quote, if any) at line:col (columns count
// characters, as YAML's do). It undoes what YAML did to the text: the quotes, a doubled quote in single quotes, escapes in
// double quotes, and line folding (a line break is one space, or a newline per blank line; the spaces around
// it are not content).
func flowScalarPosition(raw []byte, style yaml.Style, line, col, offset int) (int, int) {
	i, produced := 0, 0
	if style == yaml.SingleQuotedStyle || style == yaml.DoubleQuotedStyle {
		i, col = 1, col+1
	}
	blank := func(c byte) bool { return c == ' ' || c == '\t' }
	// escapedBreak skips a double-quoted scalar's escaped line break, which makes nothing, not even a space.
	escapedBreak := func() bool {
		if style != yaml.DoubleQuotedStyle || i+1 >= len(raw) || raw[i] != '\\' || raw[i+1] != '\n' && raw[i+1] != '\r' {
			return false
		}
		i++
		for i < len(raw) && (raw[i] == '\r' || raw[i] == '\n') {
			i++
		}
		line, col = line+1, 1
		for i < len(raw) && blank(raw[i]) {
			i, col = i+1, col+1
		}
		return true
	}
	for i < len(raw) && (produced < offset || escapedBreak()) {
		if produced >= offset {
			continue // escapedBreak took one
		}
		switch c := raw[i]; {
		case blank(c):
			j := i
			for j < len(raw) && blank(raw[j]) {
				j++
			}
			if j < len(raw) && raw[j] != '\n' && raw[j] != '\r' {
				produced += j - i // spaces inside a line are content
			}
			col += j - i
			i = j
		case c == '\r' || c == '\n':
			breaks := 0
			for i < len(raw) && (raw[i] == '\r' || raw[i] == '\n' || blank(raw[i])) {
				if raw[i] == '\n' {
					breaks++
					line, col = line+1, 0
				}
				i++
				col++
			}
			produced += max(1, breaks-1) // one break is a space, each blank line a newline
		case style == yaml.SingleQuotedStyle && c == '\'':
			i, col, produced = i+2, col+2, produced+1 // '' is one quote
		case escapedBreak():
		case style == yaml.DoubleQuotedStyle && c == '\\' && i+1 < len(raw):
			n, bytes := escapeSize(raw[i+1:])
			i, col, produced = i+1+n, col+1+n, produced+bytes
		default:
			_, size := utf8.DecodeRune(raw[i:])
			i, col, produced = i+size, col+1, produced+size
		}
	}
	return line, col
}

// escapeSize reads the YAML double-quoted escape after a backslash: how many characters of the file it takes
// and how many bytes of the value it makes.
func escapeSize(b []byte) (n, size int) {
	hex := map[byte]int{'x': 2, 'u': 4, 'U': 8}[b[0]]
	switch {
	case hex > 0 && len(b) > hex:
		v, err := strconv.ParseUint(string(b[1:1+hex]), 16, 32)
		if err != nil || utf8.RuneLen(rune(v)) < 0 {
			return 1, 1
		}
		return 1 + hex, utf8.RuneLen(rune(v)) // a character, in UTF-8 (\xE9 is é, two bytes)
	case b[0] == 'N' || b[0] == '_':
		return 1, 2 // U+0085, U+00A0
	case b[0] == 'L' || b[0] == 'P':
		return 1, 3 // U+2028, U+2029
	}
	return 1, 1
}

// rawFrom is data from line:col (columns count characters), nil when the file is shorter.
func rawFrom(data []byte, line, col int) []byte {
	for l := 1; l < line; l++ {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return nil
		}
		data = data[i+1:]
	}
	for c := 1; c < col && len(data) > 0; c++ {
		_, size := utf8.DecodeRune(data)
		data = data[size:]
	}
	return data
}

// blockIndent is the column of a block scalar's text: that of the first non-blank line after the line of its
// indicator (line counts from 1), or 0.
func blockIndent(data []byte, line int) int {
	rest := data
	for i := 0; i < line && len(rest) > 0; i++ { // skip the indicator's line and those before it
		_, rest, _ = bytes.Cut(rest, []byte("\n"))
	}
	for len(rest) > 0 {
		var l []byte
		l, rest, _ = bytes.Cut(rest, []byte("\n"))
		if t := bytes.TrimLeft(l, " "); len(bytes.TrimSpace(t)) > 0 {
			return len(l) - len(t) + 1
		}
	}
	return 0
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	prefixType   = reflect.TypeFor[netip.Prefix]()
	listenType   = reflect.TypeFor[Listen]()
)

// hiddenKey reports keys that the shared Go types have but the schema does not: msrp.tls reuses TLS, whose
// client_ca belongs to the SIP listener only.
func hiddenKey(path string) bool {
	return path == "msrp.tls.client_ca"
}

// decodeOver reads data over c. Before decoding, one walk over the YAML tree checks it against the schema so
// that every error names its key path and position: unknown keys (what yaml's KnownFields would refuse, but
// with the whole path and the keys that do exist), values of the wrong kind, and durations written as bare
// numbers, which yaml would refuse with an unhelpful message. The walk also turns a bare IP in sip.trusted
// into its /32 or /128 prefix.
func decodeOver(c *Config, data []byte) (positions, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) || len(bytes.TrimSpace(data)) == 0 {
			return positions{}, nil
		}
		return nil, fmt.Errorf("yaml: %w", err)
	}
	// One YAML file is one document (SPEC §6): what follows a second "---" would otherwise be ignored.
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, fmt.Errorf("yaml: %w", err)
		}
		return nil, fmt.Errorf("line %d: a second YAML document; the config is one document (no \"---\" after the first)", next.Line)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return positions{}, nil
		}
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return positions{}, nil // a file of only comments
	}
	w := &walker{data: data, pos: positions{}, expanding: map[*yaml.Node]bool{}, budget: maxWalkNodes}
	w.walk(root, reflect.TypeFor[Config](), "")
	if len(w.errs) > 0 {
		return nil, errors.Join(w.errs...)
	}
	if err := root.Decode(c); err != nil {
		return nil, fmt.Errorf("yaml: %w", err)
	}
	return w.pos, nil
}

// walker checks a YAML tree against the Go model and records positions.
type walker struct {
	data []byte // the file
	pos  positions
	errs []error
	// expanding holds the aliases being walked, to refuse one that contains itself; budget bounds the nodes
	// walked, so that aliases of aliases (a "billion laughs" file) cannot make the walk explode.
	expanding map[*yaml.Node]bool
	budget    int
}

// maxWalkNodes is far above any real configuration (the default has about 150 nodes).
const maxWalkNodes = 100000

// errTooComplex stops a walk that went over its budget.
var errTooComplex = errors.New("the file expands to too many values (aliases of aliases?)")

func (w *walker) fail(n *yaml.Node, key, format string, args ...any) {
	w.errs = append(w.errs, &KeyError{Key: key, Line: n.Line, Column: n.Column, Err: fmt.Errorf(format, args...)})
}

func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) {
	if w.budget--; w.budget < 0 {
		if w.budget == -1 {
			w.fail(n, path, "%w", errTooComplex)
		}
		return
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil || w.expanding[n.Alias] {
			w.fail(n, path, "alias *%s refers to itself", n.Value)
			return
		}
		w.expanding[n.Alias] = true
		defer delete(w.expanding, n.Alias)
		n = n.Alias
	}
	if path != "" {
		ps := position{line: n.Line, column: n.Column, style: n.Style}
		switch n.Style {
		case yaml.LiteralStyle:
			ps.indent = blockIndent(w.data, n.Line)
		case 0, yaml.SingleQuotedStyle, yaml.DoubleQuotedStyle:
			if n.Kind == yaml.ScalarNode {
				ps.raw = rawFrom(w.data, n.Line, n.Column)
			}
		}
		w.pos[path] = ps
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // yaml leaves scalars and sections as they were and empties lists
	}
	switch {
	case t == durationType:
		w.duration(n, path)
	case t == prefixType:
		w.prefix(n, path)
	case t == listenType:
		if !w.scalar(n, path, "a listener like udp:127.0.0.1:5060") {
			return
		}
		if _, err := ParseListen(n.Value); err != nil {
			w.fail(n, path, "%w", err)
		}
	case t.Kind() == reflect.Struct:
		w.section(n, t, path)
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.fail(n, path, "want a list, e.g. [a, b], got %s", describe(n, path))
			return
		}
		for i, e := range n.Content {
			w.walk(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	case t.Kind() == reflect.String:
		w.scalar(n, path, "a string")
	case t.Kind() == reflect.Bool:
		if w.scalar(n, path, "true or false") && n.ShortTag() != "!!bool" {
			w.fail(n, path, "want true or false, got %q", n.Value)
		}
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		if !w.scalar(n, path, "an integer") {
			return
		}
		if n.ShortTag() != "!!int" {
			w.fail(n, path, "want an integer, got %q", n.Value)
			return
		}
		if _, err := strconv.ParseInt(n.Value, 0, t.Bits()); err != nil {
			if _, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, t.Bits()); err != nil {
				w.fail(n, path, "%q is not an integer that fits in %d bits", n.Value, t.Bits())
			}
		}
	}
}

// scalar checks that n is a scalar and reports want otherwise.
func (w *walker) scalar(n *yaml.Node, path, want string) bool {
	if n.Kind != yaml.ScalarNode {
		w.fail(n, path, "want %s, got %s", want, describe(n, path))
		return false
	}
	return true
}

func (w *walker) duration(n *yaml.Node, path string) {
	if !w.scalar(n, path, `a duration like "30s"`) {
		return
	}
	switch n.ShortTag() {
	case "!!int", "!!float":
		w.fail(n, path, "%s is a bare number; write a duration with its unit, e.g. \"%ss\" or \"%sm\"", n.Value, n.Value, n.Value)
		return
	}
	if _, err := time.ParseDuration(n.Value); err != nil {
		w.fail(n, path, "%q is not a duration (write e.g. \"30s\", \"2h\", \"1h30m\")", n.Value)
	}
}

func (w *walker) prefix(n *yaml.Node, path string) {
	if !w.scalar(n, path, "an address or CIDR prefix") {
		return
	}
	v := strings.TrimSpace(n.Value)
	if !strings.Contains(v, "/") {
		a, err := netip.ParseAddr(v)
		if err != nil {
			w.fail(n, path, "%q is neither an IP address nor a CIDR prefix", n.Value)
			return
		}
		n.Value = netip.PrefixFrom(a, a.BitLen()).String()
		return
	}
	p, err := netip.ParsePrefix(v)
	if err != nil {
		w.fail(n, path, "%q is not a CIDR prefix: %v", n.Value, err)
		return
	}
	if p != p.Masked() {
		w.fail(n, path, "%q has host bits set; did you mean %s?", n.Value, p.Masked())
		return
	}
	n.Value = v
}

func (w *walker) section(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.MappingNode {
		w.fail(n, path, "want a mapping of keys (%s), got %s", strings.Join(fieldNames(t, path), ", "), describe(n, path))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Value == "<<" && k.ShortTag() == "!!merge" {
			w.merge(v, t, path)
			continue
		}
		full := join(path, k.Value)
		if line, dup := seen[k.Value]; dup {
			w.fail(k, full, "set twice (first at line %d)", line)
			continue
		}
		seen[k.Value] = k.Line
		f, ok := fieldByTag(t, k.Value)
		if !ok || hiddenKey(full) {
			where := path
			if where == "" {
				where = "the top level"
			}
			w.fail(k, full, "%w; %s has: %s", ErrUnknownKey, where, strings.Join(fieldNames(t, path), ", "))
			continue
		}
		w.walk(v, f.Type, full)
	}
}

// merge walks the mappings a YAML merge key (<<: *anchor) brings in.
func (w *walker) merge(v *yaml.Node, t reflect.Type, path string) {
	if v.Kind == yaml.SequenceNode {
		for _, e := range v.Content {
			w.merge(e, t, path)
		}
		return
	}
	if v.Kind == yaml.AliasNode {
		if v.Alias == nil || w.expanding[v.Alias] {
			w.fail(v, path, "alias *%s refers to itself", v.Value)
			return
		}
		w.expanding[v.Alias] = true
		defer delete(w.expanding, v.Alias)
		v = v.Alias
	}
	if w.budget--; w.budget < 0 {
		return
	}
	w.section(v, t, path)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// yamlName is a struct field's YAML key, or "" for fields YAML does not see.
func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	if name == "" {
		return strings.ToLower(f.Name)
	}
	return name
}

func fieldByTag(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if n := yamlName(f); n != "" && n == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// fieldNames lists the keys of a section, in schema order.
func fieldNames(t reflect.Type, path string) []string {
	var names []string
	for i := range t.NumField() {
		if n := yamlName(t.Field(i)); n != "" && !hiddenKey(join(path, n)) {
			names = append(names, n)
		}
	}
	return names
}

// schemaKeys lists every leaf key of the schema ("sip.listen", "gateway.answer.key", …), in file order. A
// list is one key, whatever its elements.
func schemaKeys() []string {
	var keys []string
	var walk func(t reflect.Type, path string)
	walk = func(t reflect.Type, path string) {
		if t.Kind() != reflect.Struct || t == prefixType || t == listenType {
			keys = append(keys, path)
			return
		}
		for i := range t.NumField() {
			f := t.Field(i)
			n := yamlName(f)
			if n == "" || hiddenKey(join(path, n)) {
				continue
			}
			walk(f.Type, join(path, n))
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return keys
}

// lookup returns the value at a leaf key path of c.
func lookup(c *Config, key string) (reflect.Value, bool) {
	v := reflect.ValueOf(c).Elem()
	for part := range strings.SplitSeq(key, ".") {
		if v.Kind() != reflect.Struct {
			return reflect.Value{}, false
		}
		f, ok := fieldByTag(v.Type(), part)
		if !ok {
			return reflect.Value{}, false
		}
		v = v.FieldByIndex(f.Index)
	}
	return v, true
}

// describe is describeNode for the value at path, except that a scalar where a secret may be (sip.credentials,
// admin.token) is not shown: the error goes to stderr and the service's logs. OpenSIPS writes a credential as
// one "user:realm:password" string, which is what a migrating operator may put here.
func describe(n *yaml.Node, path string) string {
	if n.Kind == yaml.ScalarNode && secretKey(path) {
		return "a value (not shown: it may hold a password)"
	}
	return describeNode(n)
}

func secretKey(path string) bool {
	return path == "admin.token" || path == "sip.credentials" || strings.HasPrefix(path, "sip.credentials[")
}

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}
