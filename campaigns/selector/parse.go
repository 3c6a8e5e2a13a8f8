package selector

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Parse reads a query such as `model = "X100" and firmware < "1.4.2"` (the language is described
// in README.md). It refuses queries longer than MaxQueryLen, nested deeper than MaxDepth, and
// anything it cannot read unambiguously; a *SyntaxError names the column.
func Parse(query string) (*Selector, error) {
	if len(query) > MaxQueryLen {
		return nil, fmt.Errorf("%w: query is %d bytes, longer than %d", ErrLimit, len(query), MaxQueryLen)
	}
	if !utf8.ValidString(query) {
		off := 0
		for off < len(query) {
			r, n := utf8.DecodeRuneInString(query[off:])
			if r == utf8.RuneError && n == 1 {
				break
			}
			off += n
		}
		return nil, &SyntaxError{Column: column(query, off), Msg: "invalid UTF-8"}
	}
	p := &parser{src: query}
	if err := p.lex(); err != nil {
		return nil, err
	}
	if p.peek().kind == tEOF {
		return nil, p.errAt(p.peek(), "empty query: expected a condition such as model = \"X100\"")
	}
	root, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		if t.kind == tRParen {
			return nil, p.errAt(t, "unexpected ')' without a matching '('")
		}
		return nil, p.errAt(t, "expected 'and', 'or' or the end of the query, found "+t.describe())
	}
	return &Selector{root: root}, nil
}

type tokenKind int

const (
	tEOF    tokenKind = iota
	tWord             // a field, a keyword or labels.<key>
	tString           // a quoted literal; text holds the unescaped value
	tOp               // = != ^= < <= > >=
	tLParen
	tRParen
	tComma
)

type token struct {
	kind tokenKind
	text string
	off  int // byte offset in the query
}

func (t token) describe() string {
	switch t.kind {
	case tEOF:
		return "the end of the query"
	case tString:
		return strconv.Quote(t.text)
	case tOp, tLParen, tRParen, tComma:
		return "'" + t.text + "'"
	}
	return t.text
}

type parser struct {
	src   string
	toks  []token
	pos   int
	depth int
}

func (p *parser) peek() token { return p.toks[p.pos] }

func (p *parser) next() token {
	t := p.toks[p.pos]
	if t.kind != tEOF {
		p.pos++
	}
	return t
}

func (p *parser) errAt(t token, msg string) error {
	return &SyntaxError{Column: column(p.src, t.off), Msg: msg}
}

// column turns a byte offset into a 1-based count of characters, which is what an editor shows.
func column(s string, off int) int { return utf8.RuneCountInString(s[:off]) + 1 }

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-' || c == '/'
}

// lex splits the whole query up front: queries are small, and a token list makes error columns
// and look-ahead trivial.
func (p *parser) lex() error {
	s := p.src
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(':
			p.toks = append(p.toks, token{tLParen, "(", i})
			i++
		case c == ')':
			p.toks = append(p.toks, token{tRParen, ")", i})
			i++
		case c == ',':
			p.toks = append(p.toks, token{tComma, ",", i})
			i++
		case c == '"':
			val, n, err := p.lexString(i)
			if err != nil {
				return err
			}
			p.toks = append(p.toks, token{tString, val, i})
			i += n
		case c == '=':
			if i+1 < len(s) && s[i+1] == '=' {
				return &SyntaxError{Column: column(s, i), Msg: "use '=' for equality, not '=='"}
			}
			p.toks = append(p.toks, token{tOp, "=", i})
			i++
		case c == '!' || c == '^':
			if i+1 >= len(s) || s[i+1] != '=' {
				if c == '!' {
					return &SyntaxError{Column: column(s, i), Msg: "unexpected '!': write 'not' to negate, '!=' for inequality"}
				}
				return &SyntaxError{Column: column(s, i), Msg: "unexpected '^': the prefix operator is '^='"}
			}
			p.toks = append(p.toks, token{tOp, s[i : i+2], i})
			i += 2
		case c == '<' || c == '>':
			n := 1
			if i+1 < len(s) && s[i+1] == '=' {
				n = 2
			}
			p.toks = append(p.toks, token{tOp, s[i : i+n], i})
			i += n
		case c == '&' || c == '|':
			return &SyntaxError{Column: column(s, i), Msg: fmt.Sprintf("unexpected '%c': write 'and' or 'or'", c)}
		case c == '\'':
			return &SyntaxError{Column: column(s, i), Msg: "strings are written in double quotes"}
		case isWordByte(c):
			j := i
			for j < len(s) && isWordByte(s[j]) {
				j++
			}
			p.toks = append(p.toks, token{tWord, s[i:j], i})
			i = j
		default:
			r, _ := utf8.DecodeRuneInString(s[i:])
			return &SyntaxError{Column: column(s, i), Msg: fmt.Sprintf("unexpected character %q", r)}
		}
	}
	p.toks = append(p.toks, token{tEOF, "", len(s)})
	return nil
}

// lexString reads the literal starting at the quote at start; it returns the value and the
// number of bytes read, quotes included.
func (p *parser) lexString(start int) (string, int, error) {
	s := p.src
	var b strings.Builder
	for i := start + 1; i < len(s); {
		c := s[i]
		switch {
		case c == '"':
			return b.String(), i + 1 - start, nil
		case c < 0x20 || c == 0x7f:
			// Raw control characters would make a stored query unreadable; escapes say what they are.
			return "", 0, &SyntaxError{Column: column(s, i), Msg: fmt.Sprintf("control character %q in a string: write it as an escape", rune(c))}
		case c != '\\':
			b.WriteByte(c)
			i++
			continue
		}
		if i+1 >= len(s) {
			break
		}
		switch e := s[i+1]; e {
		case '"', '\\':
			b.WriteByte(e)
			i += 2
		case 'n':
			b.WriteByte('\n')
			i += 2
		case 't':
			b.WriteByte('\t')
			i += 2
		case 'r':
			b.WriteByte('\r')
			i += 2
		case 'u', 'U':
			n := 4
			if e == 'U' {
				n = 8
			}
			hex := s[i+2 : min(i+2+n, len(s))]
			v, err := strconv.ParseUint(hex, 16, 32)
			if len(hex) != n || err != nil || strings.ContainsAny(hex, "+-") {
				return "", 0, &SyntaxError{Column: column(s, i), Msg: fmt.Sprintf("escape \\%c needs %d hex digits", e, n)}
			}
			r := rune(v)
			if !utf8.ValidRune(r) {
				return "", 0, &SyntaxError{Column: column(s, i), Msg: fmt.Sprintf("escape \\%c%s is not a valid character", e, hex)}
			}
			b.WriteRune(r)
			i += 2 + n
		default:
			r, _ := utf8.DecodeRuneInString(s[i+1:])
			return "", 0, &SyntaxError{Column: column(s, i), Msg: fmt.Sprintf("invalid escape \\%c (known: \\\" \\\\ \\n \\t \\r \\uXXXX \\UXXXXXXXX)", r)}
		}
	}
	return "", 0, &SyntaxError{Column: column(s, start), Msg: "string is not closed: missing '\"'"}
}

// enter counts one level of nesting ('(' or 'not') and refuses the one beyond MaxDepth; the
// recursive descent is bounded by it, so no query can exhaust the stack.
func (p *parser) enter(t token) error {
	p.depth++
	if p.depth > MaxDepth {
		return &SyntaxError{Column: column(p.src, t.off), Msg: fmt.Sprintf("nested deeper than %d levels", MaxDepth), limit: true}
	}
	return nil
}

func (p *parser) parseOr() (node, error) {
	x, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	terms := []node{x}
	for p.peek().kind == tWord && p.peek().text == "or" {
		p.next()
		y, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		terms = append(terms, y)
	}
	if len(terms) == 1 {
		return x, nil
	}
	return flatten(&orNode{}, terms), nil
}

func (p *parser) parseAnd() (node, error) {
	x, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	terms := []node{x}
	for p.peek().kind == tWord && p.peek().text == "and" {
		p.next()
		y, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		terms = append(terms, y)
	}
	if len(terms) == 1 {
		return x, nil
	}
	return flatten(&andNode{}, terms), nil
}

// flatten splices nested nodes of the same kind ("a and (b and c)") into one, so that every
// query has a single canonical tree and String round-trips.
func flatten(into node, terms []node) node {
	switch n := into.(type) {
	case *andNode:
		for _, t := range terms {
			if a, ok := t.(*andNode); ok {
				n.terms = append(n.terms, a.terms...)
			} else {
				n.terms = append(n.terms, t)
			}
		}
	case *orNode:
		for _, t := range terms {
			if o, ok := t.(*orNode); ok {
				n.terms = append(n.terms, o.terms...)
			} else {
				n.terms = append(n.terms, t)
			}
		}
	}
	return into
}

func (p *parser) parseUnary() (node, error) {
	t := p.peek()
	if t.kind == tWord && t.text == "not" {
		p.next()
		if err := p.enter(t); err != nil {
			return nil, err
		}
		x, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		p.depth--
		return &notNode{x: x}, nil
	}
	return p.parsePrimary()
}

func (p *parser) parsePrimary() (node, error) {
	t := p.next()
	switch t.kind {
	case tLParen:
		if err := p.enter(t); err != nil {
			return nil, err
		}
		x, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if c := p.peek(); c.kind != tRParen {
			return nil, p.errAt(c, fmt.Sprintf("expected ')' to close the '(' at column %d, found %s", column(p.src, t.off), c.describe()))
		}
		p.next()
		p.depth--
		return x, nil
	case tWord:
	case tEOF:
		return nil, p.errAt(t, "expected a condition, found the end of the query")
	case tString:
		return nil, p.errAt(t, "expected a field before the value "+t.describe()+" (such as model = "+t.describe()+")")
	default:
		return nil, p.errAt(t, "expected a condition, found "+t.describe())
	}
	switch t.text {
	case "online":
		return onlineNode{}, nil
	case "has":
		k := p.next()
		f, ok := fieldOf(k)
		if k.kind != tWord || !ok || f.kind != fLabel {
			return nil, p.errAt(k, "expected a label after 'has' (such as has labels.cell), found "+k.describe())
		}
		return &hasNode{key: f.label}, nil
	case "and", "or", "in":
		return nil, p.errAt(t, "expected a condition, found '"+t.text+"'")
	}
	f, ok := fieldOf(t)
	if !ok {
		if strings.HasPrefix(t.text, "labels.") || t.text == "labels" {
			return nil, p.errAt(t, "expected a label key after 'labels.' (letters, digits, '_', '-', '.', '/'; starting with a letter or digit)")
		}
		return nil, p.errAt(t, fmt.Sprintf("unknown field %q (fields: endpoint, manufacturer, model, device_type, firmware, labels.<key>; conditions: online, has labels.<key>)", t.text))
	}
	return p.parseComparison(t, f)
}

func (p *parser) parseComparison(ft token, f field) (node, error) {
	opTok := p.next()
	switch {
	case opTok.kind == tOp:
		if ordering(opTok.text) && f.kind != fFirmware {
			return nil, p.errAt(opTok, fmt.Sprintf("'%s' compares versions and applies to firmware only", opTok.text))
		}
		v := p.next()
		if v.kind != tString {
			msg := fmt.Sprintf("expected a value after '%s', found %s", opTok.text, v.describe())
			if v.kind == tWord {
				msg += fmt.Sprintf(" (values are quoted: %q)", v.text)
			}
			return nil, p.errAt(v, msg)
		}
		return &cmpNode{field: f, op: opTok.text, value: v.text}, nil
	case opTok.kind == tWord && opTok.text == "in":
		return p.parseList(f, false)
	case opTok.kind == tWord && opTok.text == "not":
		if in := p.next(); in.kind != tWord || in.text != "in" {
			return nil, p.errAt(in, "expected 'in' after '"+f.String()+" not', found "+in.describe())
		}
		return p.parseList(f, true)
	}
	return nil, p.errAt(opTok, fmt.Sprintf("expected an operator after %s (=, !=, ^=, in, not in%s), found %s",
		ft.text, map[bool]string{true: ", <, <=, >, >=", false: ""}[f.kind == fFirmware], opTok.describe()))
}

func (p *parser) parseList(f field, negate bool) (node, error) {
	open := p.next()
	if open.kind != tLParen {
		return nil, p.errAt(open, "expected '(' to start the list, found "+open.describe())
	}
	n := &inNode{field: f, negate: negate}
	for {
		v := p.next()
		if v.kind != tString {
			msg := "expected a quoted value in the list, found " + v.describe()
			if v.kind == tWord {
				msg += fmt.Sprintf(" (values are quoted: %q)", v.text)
			}
			return nil, p.errAt(v, msg)
		}
		n.values = append(n.values, v.text)
		sep := p.next()
		if sep.kind == tRParen {
			break
		}
		if sep.kind != tComma {
			return nil, p.errAt(sep, fmt.Sprintf("expected ',' or ')' in the list opened at column %d, found %s", column(p.src, open.off), sep.describe()))
		}
	}
	n.index()
	return n, nil
}

func ordering(op string) bool { return op == "<" || op == "<=" || op == ">" || op == ">=" }
