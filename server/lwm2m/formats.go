package lwm2m

// ContentFormat is a CoAP Content-Format number.
type ContentFormat uint16

// The content formats LwM2M 1.0–1.2 uses (OMA registry and RFC 7252 §12.3).
const (
	FormatText       ContentFormat = 0
	FormatLinkFormat ContentFormat = 40
	FormatOpaque     ContentFormat = 42
	FormatCBOR       ContentFormat = 60
	FormatSenMLJSON  ContentFormat = 110
	FormatSenMLCBOR  ContentFormat = 112
	FormatTLV        ContentFormat = 11542
	FormatJSONOld    ContentFormat = 11543 // OMA LwM2M JSON of 1.0; decoded but never chosen
	FormatLwM2MCBOR  ContentFormat = 11544
)

// Name is the short name used in the REST API ("tlv", "senml-json", ...).
func (f ContentFormat) Name() string {
	switch f {
	case FormatText:
		return "text"
	case FormatLinkFormat:
		return "link"
	case FormatOpaque:
		return "opaque"
	case FormatCBOR:
		return "cbor"
	case FormatSenMLJSON:
		return "senml-json"
	case FormatSenMLCBOR:
		return "senml-cbor"
	case FormatTLV:
		return "tlv"
	case FormatJSONOld:
		return "lwm2m-json"
	case FormatLwM2MCBOR:
		return "lwm2m-cbor"
	}
	return ""
}

// ParseFormatName is the inverse of Name.
func ParseFormatName(s string) (ContentFormat, bool) {
	for _, f := range []ContentFormat{FormatText, FormatLinkFormat, FormatOpaque, FormatCBOR, FormatSenMLJSON, FormatSenMLCBOR, FormatTLV, FormatJSONOld, FormatLwM2MCBOR} {
		if f.Name() == s {
			return f, true
		}
	}
	return 0, false
}
