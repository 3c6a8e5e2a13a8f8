package linkformat

import "strings"

// Format writes links in RFC 6690 syntax without whitespace. Parse(Format(l)) gives
// back l for any l Format can express (targets without '>', names of token chars).
func Format(links []Link) []byte {
	var b strings.Builder
	for i, l := range links {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('<')
		b.WriteString(l.Target)
		b.WriteByte('>')
		for _, p := range l.Params {
			b.WriteByte(';')
			b.WriteString(p.Key)
			if !p.HasValue {
				continue
			}
			b.WriteByte('=')
			if needsQuotes(p) {
				writeQuoted(&b, p.Value)
			} else {
				b.WriteString(p.Value)
			}
		}
	}
	return []byte(b.String())
}

func needsQuotes(p Param) bool {
	// RFC 6690 and LwM2M write these quoted even when the value would pass as a token,
	// and some clients only match the quoted form.
	switch p.Key {
	case "rt", "if", "anchor", "title":
		return true
	}
	if p.Value == "" {
		return true
	}
	for i := 0; i < len(p.Value); i++ {
		if !isTokenChar(p.Value[i]) {
			return true
		}
	}
	return false
}

func writeQuoted(b *strings.Builder, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
}
