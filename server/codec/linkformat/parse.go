package linkformat

import (
	"fmt"
	"strings"
)

// Parse reads a link-format payload. It skips whitespace around separators (devices
// add newlines) but otherwise follows RFC 6690: targets in <>, ';' before each
// parameter, ',' between links, values as tokens or quoted strings.
func Parse(data []byte) ([]Link, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), MaxSize)
	}
	p := parser{s: string(data)}
	var links []Link
	p.space()
	if p.done() {
		return nil, nil
	}
	for {
		if len(links) == MaxLinks {
			return nil, fmt.Errorf("%w: limit %d", ErrTooManyLinks, MaxLinks)
		}
		l, err := p.link()
		if err != nil {
			return nil, err
		}
		links = append(links, l)
		p.space()
		if p.done() {
			return links, nil
		}
		if p.s[p.i] != ',' {
			return nil, p.errorf("expected ',' between links")
		}
		p.i++
		p.space()
	}
}

type parser struct {
	s string
	i int
}

func (p *parser) done() bool { return p.i >= len(p.s) }

func (p *parser) space() {
	for p.i < len(p.s) && isSpace(p.s[p.i]) {
		p.i++
	}
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w at offset %d: %s", ErrSyntax, p.i, fmt.Sprintf(format, args...))
}

func (p *parser) link() (Link, error) {
	var l Link
	if p.done() || p.s[p.i] != '<' {
		return l, p.errorf("link must start with '<'")
	}
	end := strings.IndexByte(p.s[p.i+1:], '>')
	if end < 0 {
		return l, p.errorf("unterminated target")
	}
	l.Target = p.s[p.i+1 : p.i+1+end]
	for j := 0; j < len(l.Target); j++ {
		if c := l.Target[j]; c <= ' ' || c == 0x7f || c == '<' || c == '"' {
			return l, p.errorf("bad character %q in target", c)
		}
	}
	p.i += end + 2
	for {
		p.space()
		if p.done() || p.s[p.i] != ';' {
			return l, nil
		}
		p.i++
		p.space()
		prm, err := p.param()
		if err != nil {
			return l, err
		}
		l.Params = append(l.Params, prm)
	}
}

func (p *parser) param() (Param, error) {
	start := p.i
	for p.i < len(p.s) && isNameChar(p.s[p.i]) {
		p.i++
	}
	prm := Param{Key: p.s[start:p.i]}
	if prm.Key == "" {
		return prm, p.errorf("missing parameter name")
	}
	p.space()
	if p.done() || p.s[p.i] != '=' {
		return prm, nil
	}
	p.i++
	p.space()
	prm.HasValue = true
	if !p.done() && p.s[p.i] == '"' {
		v, err := p.quoted()
		prm.Value = v
		return prm, err
	}
	start = p.i
	for p.i < len(p.s) && isTokenChar(p.s[p.i]) {
		p.i++
	}
	prm.Value = p.s[start:p.i]
	if prm.Value == "" {
		return prm, p.errorf("missing value for %q", prm.Key)
	}
	return prm, nil
}

// quoted reads an RFC 7230 quoted-string, undoing backslash escapes.
func (p *parser) quoted() (string, error) {
	p.i++ // opening quote
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return b.String(), nil
		case c == '\\':
			if p.i+1 >= len(p.s) {
				return "", p.errorf("unterminated escape")
			}
			if isControl(p.s[p.i+1]) {
				return "", p.errorf("escaped control character in quoted string")
			}
			b.WriteByte(p.s[p.i+1])
			p.i += 2
		case isControl(c):
			return "", p.errorf("control character in quoted string")
		default:
			b.WriteByte(c)
			p.i++
		}
	}
	return "", p.errorf("unterminated quoted string")
}

// isControl is what RFC 7230 keeps out of quoted strings, escaped or not.
func isControl(c byte) bool { return c < ' ' && c != '\t' || c == 0x7f }

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// isNameChar is RFC 5987's attr-char less '*' and '%': the characters of a parmname.
func isNameChar(c byte) bool {
	return isAlnum(c) || strings.IndexByte("!#$&+-.^_`|~", c) >= 0
}

// isTokenChar is RFC 6690's ptokenchar.
func isTokenChar(c byte) bool {
	return isAlnum(c) || strings.IndexByte("!#$%&'()*+-./:<=>?@[]^_`{|}~", c) >= 0
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
