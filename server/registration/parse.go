package registration

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/lwota/lwota/server/codec/linkformat"
	"github.com/lwota/lwota/server/lwm2m"
)

// params are the Register/Update query parameters (Core 1.2 §6.2.1).
type params struct {
	endpoint    string
	lifetime    uint32
	hasLifetime bool
	version     string
	binding     string
	hasBinding  bool
	queue       bool
	sms         string
}

func parseQuery(query []string) (params, error) {
	var p params
	for _, q := range query {
		key, val, hasVal := strings.Cut(q, "=")
		switch key {
		case "ep":
			p.endpoint = val
		case "lt":
			v, err := strconv.ParseUint(val, 10, 32)
			if err != nil {
				return p, fmt.Errorf("%w: lt=%q is not a lifetime in seconds", ErrBadRequest, val)
			}
			p.lifetime, p.hasLifetime = uint32(v), true
		case "lwm2m":
			p.version = val
		case "b":
			p.binding, p.hasBinding = val, true
		case "Q":
			if hasVal {
				return p, fmt.Errorf("%w: Q takes no value", ErrBadRequest)
			}
			p.queue = true
		case "sms":
			p.sms = val
		case "et", "d", "apn", "lt2": // known optional parameters lwota has no use for
		default:
			// Unknown parameters are ignored so newer clients still register.
		}
	}
	return p, nil
}

// validEndpoint refuses names that could not be shown, stored or routed safely: at most maxLen
// bytes of printable UTF-8 (unicode.IsPrint: letters, marks, numbers, punctuation, symbols and
// the ASCII space), so no control characters (C0, DEL, C1), no formatting characters such as
// bidirectional overrides or zero-width spaces that make a name display as another, and none
// of '/', '?' and '#', which would split the name in a URL path.
func validEndpoint(ep string, maxLen int) error {
	if ep == "" {
		return fmt.Errorf("%w: endpoint name (ep) is missing", ErrBadRequest)
	}
	if len(ep) > maxLen {
		return overLimit(limitEndpointName, fmt.Errorf("%w: endpoint name is %d bytes, the limit is %d", ErrBadRequest, len(ep), maxLen))
	}
	if !utf8.ValidString(ep) {
		return overLimit(limitEndpointName, fmt.Errorf("%w: endpoint name is not UTF-8", ErrBadRequest))
	}
	for i, r := range ep {
		if !unicode.IsPrint(r) || r == '/' || r == '?' || r == '#' {
			return overLimit(limitEndpointName, fmt.Errorf("%w: endpoint name has the character %U at byte %d; printable UTF-8 without '/', '?' or '#' is allowed", ErrBadRequest, r, i))
		}
	}
	return nil
}

// validRootPath refuses an alternate path (Core §6.2.1.1) that is not a plain absolute path:
// lwota puts it in front of every request path, so "." and ".." segments (or empty ones) would
// address resources outside the device's LwM2M tree, or a proxy's other routes.
func validRootPath(root string) error {
	if root == "/" {
		return nil
	}
	if !strings.HasPrefix(root, "/") {
		return fmt.Errorf("%w: alternate path %q is not absolute", ErrBadRequest, root)
	}
	for _, seg := range strings.Split(root[1:], "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w: alternate path %q has an empty, \".\" or \"..\" segment", ErrBadRequest, root)
		}
	}
	return nil
}

// validBinding accepts the binding letters of LwM2M 1.0 (U, UQ, S, SQ, US, UQS) and 1.1+ (U, S, N, T).
func validBinding(b string) error {
	if b == "" {
		return fmt.Errorf("%w: empty binding", ErrBadRequest)
	}
	for _, r := range b {
		if !strings.ContainsRune("USNTQ", r) {
			return fmt.Errorf("%w: binding %q has the unknown mode %q", ErrBadRequest, b, r)
		}
	}
	return nil
}

func supportedVersion(v string) bool {
	switch v {
	case "1.0", "1.1", "1.2":
		return true
	}
	return false
}

// objectList is what a Register or Update payload says about the device's objects.
type objectList struct {
	rootPath string
	formats  []uint16
	objects  []ObjectLink
}

// parseObjectList reads the CoRE link-format object list (Core 1.2 §6.2.1.1): an optional
// alternate-path link carrying rt="oma.lwm2m" and the content formats, then object and
// instance links with optional ver=.
func parseObjectList(payload []byte, maxObjects int) (objectList, error) {
	ol := objectList{rootPath: "/"}
	links, err := linkformat.Parse(payload)
	if err != nil {
		return ol, fmt.Errorf("%w: object list: %v", ErrBadRequest, err)
	}
	if len(links) > maxObjects {
		return ol, overLimit(limitObjects, fmt.Errorf("%w: %d links in the object list, the limit is %d", ErrTooLarge, len(links), maxObjects))
	}
	// The alternate path must be known before object links are read relative to it.
	for _, l := range links {
		if rt, ok := l.Param("rt"); ok && strings.Trim(rt, `"`) == "oma.lwm2m" {
			ol.rootPath = strings.TrimSuffix(l.Target, "/")
			if ol.rootPath == "" {
				ol.rootPath = "/"
			}
			if err := validRootPath(ol.rootPath); err != nil {
				return ol, err
			}
			if ct, ok := l.Param("ct"); ok {
				for _, f := range strings.Fields(strings.Trim(ct, `"`)) {
					n, err := strconv.ParseUint(f, 10, 16)
					if err != nil {
						return ol, fmt.Errorf("%w: ct=%q on the root link", ErrBadRequest, ct)
					}
					ol.formats = append(ol.formats, uint16(n))
				}
			}
		}
	}
	for _, l := range links {
		if rt, ok := l.Param("rt"); ok && strings.Trim(rt, `"`) == "oma.lwm2m" {
			continue
		}
		target := l.Target
		if ol.rootPath != "/" {
			if !strings.HasPrefix(target, ol.rootPath+"/") {
				continue // links outside the alternate path are not LwM2M objects
			}
			target = strings.TrimPrefix(target, ol.rootPath)
		}
		if target == "/" || target == "" {
			continue
		}
		p, err := lwm2m.ParsePath(target)
		if err != nil || p.Len() < 1 || p.Len() > 2 {
			return ol, fmt.Errorf("%w: object list link <%s> is not an object or object instance", ErrBadRequest, l.Target)
		}
		ver, _ := l.Param("ver")
		ol.objects = append(ol.objects, ObjectLink{Path: p, Version: strings.Trim(ver, `"`)})
	}
	return ol, nil
}
