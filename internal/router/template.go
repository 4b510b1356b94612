package router

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// maxParams bounds the parameters of one template so that the matcher can
// keep its captures in a fixed-size array on the stack.
const maxParams = 16

type segKind uint8

const (
	segLiteral segKind = iota
	segParam
	segGreedy
)

// segment is one "/"-separated part of a template.
type segment struct {
	kind segKind
	lit  string // segLiteral: the decoded literal
	esc  string // segLiteral: lit escaped for a URL path
	name string // segParam, segGreedy: parameter name, without "+"
}

// Template is a parsed path template such as "/orders/{id}" or
// "/files/{proxy+}". Literal segments match exactly (after
// percent-decoding), {name} matches one non-empty segment, and a final
// {name+} matches one or more segments. The zero Template is the root
// path "/".
type Template struct {
	raw    string
	segs   []segment
	params []string
}

// ParseTemplate parses a path template. It must start with "/", must not
// contain empty segments, a query or a fragment, and each parameter must
// be a whole segment with a unique name made of letters, digits, "_" and
// "-". Only the last segment may be greedy. A single trailing "/" is
// rejected rather than ignored so that a template has one spelling.
func ParseTemplate(s string) (Template, error) {
	t := Template{raw: s}
	if err := t.parse(s); err != nil {
		return Template{}, fmt.Errorf("path template %q: %w", s, err)
	}
	return t, nil
}

func (t *Template) parse(s string) error {
	switch {
	case s == "":
		return errors.New("empty template; use \"/\" for the root")
	case s[0] != '/':
		return errors.New("must start with \"/\"")
	case strings.ContainsAny(s, "?#"):
		return errors.New("must not contain a query (\"?\") or fragment (\"#\")")
	case s == "/":
		return nil
	}
	parts := strings.Split(s[1:], "/")
	for i, p := range parts {
		last := i == len(parts)-1
		if p == "" {
			if last {
				return errors.New("trailing \"/\" is not allowed")
			}
			return errors.New("empty segment (\"//\")")
		}
		seg, err := parseSegment(p, last)
		if err != nil {
			return fmt.Errorf("segment %q: %w", p, err)
		}
		if seg.kind != segLiteral {
			for _, name := range t.params {
				if name == seg.name {
					return fmt.Errorf("duplicate parameter name %q", seg.name)
				}
			}
			if len(t.params) == maxParams {
				return fmt.Errorf("more than %d parameters", maxParams)
			}
			t.params = append(t.params, seg.name)
		}
		t.segs = append(t.segs, seg)
	}
	return nil
}

func parseSegment(p string, last bool) (segment, error) {
	if p[0] != '{' {
		if strings.ContainsAny(p, "{}") {
			return segment{}, errors.New("a parameter must be a whole segment, like {name}")
		}
		lit, err := url.PathUnescape(p)
		if err != nil {
			return segment{}, fmt.Errorf("invalid percent-encoding: %w", err)
		}
		if lit == "." || lit == ".." {
			return segment{}, errors.New("dot segments are not allowed")
		}
		return segment{kind: segLiteral, lit: lit, esc: url.PathEscape(lit)}, nil
	}
	if p[len(p)-1] != '}' {
		if strings.IndexByte(p, '}') >= 0 {
			return segment{}, errors.New("a parameter must be a whole segment, like {name}")
		}
		return segment{}, errors.New("unclosed \"{\"")
	}
	name := p[1 : len(p)-1]
	kind := segParam
	if strings.HasSuffix(name, "+") {
		kind = segGreedy
		name = name[:len(name)-1]
	}
	if name == "" {
		return segment{}, errors.New("empty parameter name")
	}
	for _, c := range []byte(name) {
		if !isNameByte(c) {
			return segment{}, fmt.Errorf("parameter name %q: only letters, digits, \"_\" and \"-\" are allowed", name)
		}
	}
	if kind == segGreedy && !last {
		return segment{}, fmt.Errorf("greedy parameter {%s+} must be the last segment", name)
	}
	return segment{kind: kind, name: name}, nil
}

func isNameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

// String returns the template as it was written.
func (t Template) String() string {
	if t.raw == "" {
		return "/"
	}
	return t.raw
}

// Params returns the parameter names in the order they appear, greedy
// ones without their "+".
func (t Template) Params() []string {
	return append([]string(nil), t.params...)
}

// Expand builds a path from t, filling each {name} and {name+} from
// req.PathValue(name). It returns the decoded path and its escaped form,
// suitable for url.URL Path and RawPath.
//
// A single-segment value is escaped as one segment, so a decoded "a/b"
// becomes "a%2Fb". A greedy value keeps its "/" separators. When the
// greedy value is the tail of req's own path, as it is after routing, the
// escaping the client sent is kept, so an encoded slash (%2F) inside the
// tail reaches the upstream still encoded instead of turning into a
// separator. Otherwise each of its segments is escaped on its own.
//
// A parameter without a value expands to the empty string; callers check
// at build time that the route provides every name in t.Params.
func (t Template) Expand(req *http.Request) (path, rawPath string) {
	if len(t.segs) == 0 {
		return "/", "/"
	}
	var p, raw strings.Builder
	p.Grow(len(t.raw) + 16)
	raw.Grow(len(t.raw) + 16)
	for _, s := range t.segs {
		p.WriteByte('/')
		raw.WriteByte('/')
		switch s.kind {
		case segLiteral:
			p.WriteString(s.lit)
			raw.WriteString(s.esc)
		case segParam:
			v := req.PathValue(s.name)
			p.WriteString(v)
			raw.WriteString(url.PathEscape(v))
		case segGreedy:
			v := req.PathValue(s.name)
			p.WriteString(v)
			if esc, ok := requestTail(req, v); ok {
				raw.WriteString(esc)
			} else {
				escapeSegments(&raw, v)
			}
		}
	}
	return p.String(), raw.String()
}

// requestTail returns the escaped tail of req's path (minus the one
// trailing slash routing ignores) that decodes to v, if there is one.
func requestTail(req *http.Request, v string) (string, bool) {
	if v == "" || req.URL == nil {
		return "", false
	}
	ep := req.URL.EscapedPath()
	if len(ep) > 1 && ep[len(ep)-1] == '/' {
		ep = ep[:len(ep)-1]
	}
	// A decoded string is at most as long as its escaped form and at
	// least a third of it, which bounds the candidate tails.
	for i := len(ep) - 1; i >= 0; i-- {
		tail := ep[i+1:]
		if len(tail) > 3*len(v) {
			break
		}
		if ep[i] == '/' && len(tail) >= len(v) && decodedEqual(tail, v) {
			return tail, true
		}
	}
	return "", false
}

// escapeSegments writes v with each "/"-separated segment escaped. Dot
// segments are escaped too so that the result cannot climb out of the
// template's prefix at an upstream that normalizes paths.
func escapeSegments(b *strings.Builder, v string) {
	for i, s := range strings.Split(v, "/") {
		if i > 0 {
			b.WriteByte('/')
		}
		switch s {
		case ".":
			b.WriteString("%2E")
		case "..":
			b.WriteString("%2E%2E")
		default:
			b.WriteString(url.PathEscape(s))
		}
	}
}

// decodedEqual reports whether the percent-decoding of esc equals s,
// without allocating. Malformed escapes never compare equal.
func decodedEqual(esc, s string) bool {
	j := 0
	for i := 0; i < len(esc); i++ {
		c := esc[i]
		if c == '%' {
			if i+2 >= len(esc) {
				return false
			}
			hi, ok1 := unhex(esc[i+1])
			lo, ok2 := unhex(esc[i+2])
			if !ok1 || !ok2 {
				return false
			}
			c = hi<<4 | lo
			i += 2
		}
		if j >= len(s) || s[j] != c {
			return false
		}
		j++
	}
	return j == len(s)
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
