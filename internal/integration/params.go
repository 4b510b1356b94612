package integration

import (
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/drawbridge-gw/drawbridge/internal/gwresponse"
	"github.com/drawbridge-gw/drawbridge/internal/observe"
)

// Mapping is one requestParameters entry: Target (a header or query
// parameter sent to the backend) is set from Source.
type Mapping struct {
	// TargetKind is "header" or "querystring"; TargetName its name.
	TargetKind, TargetName string
	// SourceKind is "header", "querystring" or "path" for a value of the
	// partner's request, "context" for a value the gateway knows
	// (SourceName "requestId" or "identity.sourceIp"), or "literal" for a
	// static value; SourceName is the name, or the value itself for a
	// literal.
	SourceKind, SourceName string
}

// forbiddenHeaders may not be mapped: API Gateway refuses mappings to
// Content-Length and Transfer-Encoding as a request-smuggling guard, and
// the others are hop-by-hop or owned by the proxy.
// Via, Proxy-Authenticate and X-Forwarded-Host/-Proto say what the proxy
// itself did or saw; a backend trusting them must get the proxy's values.
var forbiddenHeaders = []string{"Content-Length", "Transfer-Encoding", "Connection", "Te", "Upgrade", "Host", "Proxy-Authorization", "Keep-Alive", "Trailer",
	"Via", "Proxy-Authenticate", "X-Forwarded-Host", "X-Forwarded-Proto"}

// contextSources are the context.* values a mapping can send: the ones
// the gateway asserts about a request, which a backend may trust.
var contextSources = []string{"requestId", "identity.sourceIp"}

// ParseParameters parses API Gateway requestParameters ("integration.
// request.header.X" → "method.request.querystring.y" or "'static'"),
// returning the mappings sorted by target and one message per bad entry.
func ParseParameters(params map[string]string) ([]Mapping, []string) {
	var out []Mapping
	var errs []string
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		m, err := parseOne(k, params[k])
		if err != "" {
			errs = append(errs, fmt.Sprintf("request_parameters %q: %s", k, err))
			continue
		}
		out = append(out, m)
	}
	return out, errs
}

func parseOne(key, src string) (Mapping, string) {
	var m Mapping
	target, ok := strings.CutPrefix(key, "integration.request.")
	if ok {
		m.TargetKind, m.TargetName, ok = strings.Cut(target, ".")
	}
	switch {
	case !ok || m.TargetName == "":
		return m, "want integration.request.header.NAME or integration.request.querystring.NAME"
	case m.TargetKind == "path":
		return m, "path parameters are mapped by upstream_path, e.g. upstream_path: /items/{id}"
	case m.TargetKind != "header" && m.TargetKind != "querystring":
		return m, "want integration.request.header.NAME or integration.request.querystring.NAME"
	case m.TargetKind == "header" && !httpguts.ValidHeaderFieldName(m.TargetName):
		return m, fmt.Sprintf("%q is not a valid header name", m.TargetName)
	case m.TargetKind == "header" && slices.Contains(forbiddenHeaders, textproto.CanonicalMIMEHeaderKey(m.TargetName)):
		return m, fmt.Sprintf("header %s cannot be mapped (it belongs to the connection or the proxy, not the request)", m.TargetName)
	}
	if len(src) >= 2 && src[0] == '\'' && src[len(src)-1] == '\'' {
		m.SourceKind, m.SourceName = "literal", src[1:len(src)-1]
		if m.TargetKind == "header" && !httpguts.ValidHeaderFieldValue(m.SourceName) {
			return m, fmt.Sprintf("value %q has control characters; a header cannot carry them", m.SourceName)
		}
		return m, ""
	}
	if m.SourceKind, m.SourceName, ok = source(src); !ok {
		return m, fmt.Sprintf("source %q: want method.request.header.NAME, method.request.querystring.NAME, method.request.path.NAME, context.requestId, context.identity.sourceIp or a 'static value'", src)
	}
	return m, ""
}

// source parses a mapping's source other than a 'literal': a context
// value the gateway asserts, or a part of the method request. ok is false
// for anything else.
func source(src string) (kind, name string, ok bool) {
	if ctx, found := strings.CutPrefix(src, "context."); found && slices.Contains(contextSources, ctx) {
		return "context", ctx, true
	}
	from, found := strings.CutPrefix(src, "method.request.")
	if !found {
		return "", "", false
	}
	kind, name, _ = strings.Cut(from, ".")
	if name == "" || (kind != "header" && kind != "querystring" && kind != "path") {
		return "", "", false
	}
	return kind, name, true
}

// ValidSource reports whether src can be a mapping's source other than a
// 'literal' (method.request.header.NAME, context.requestId, ...).
func ValidSource(src string) bool {
	_, _, ok := source(src)
	return ok
}

// StatusMap compiles API Gateway integration responses of an http
// integration: selection patterns (regular expressions matched against
// the whole backend status, such as "4\\d{2}") to the status the partner
// gets, and "default" for the rest. Without "default" an unmatched status
// maps to 0: API Gateway then answers 500 Internal server error ("No
// match for output mapping and no default output mapping configured"),
// and so does the proxy. Patterns are tried in sorted order; API Gateway
// requires that they do not overlap.
func StatusMap(m map[string]int) (func(int) int, []string) {
	if len(m) == 0 {
		return nil, nil
	}
	type rule struct {
		re     *regexp.Regexp
		status int
	}
	var rules []rule
	var errs []string
	def := 0
	for _, k := range slices.Sorted(maps.Keys(m)) {
		st := m[k]
		if err := gwresponse.CheckStatus(st); err != nil {
			errs = append(errs, fmt.Sprintf("status_map %q: %v", k, err))
			continue
		}
		if k == "default" {
			def = st
			continue
		}
		re, err := regexp.Compile("^(?:" + k + ")$")
		if err != nil {
			errs = append(errs, fmt.Sprintf("status_map %q: not a regular expression: %v", k, err))
			continue
		}
		rules = append(rules, rule{re, st})
	}
	if len(errs) > 0 {
		return nil, errs
	}
	match := func(status int) int {
		code := strconv.Itoa(status)
		for _, r := range rules {
			if r.re.MatchString(code) {
				return r.status
			}
		}
		return def // 0 when there is no default
	}
	// Every response goes through the map; the answer for each
	// three-digit status is worked out once here instead.
	var table [900]int16
	for s := range table {
		table[s] = int16(match(s + 100))
	}
	return func(status int) int {
		if status >= 100 && status <= 999 {
			return int(table[status-100])
		}
		return match(status)
	}, nil
}

// Options are what New applies to a route's requests.
type Options struct {
	// Parameters are the route's mappings (see ParseParameters).
	Parameters []Mapping
	// Method replaces the request's method toward the backend; "" keeps it.
	Method string
}

// New returns next behind the integration request mappings, or next
// itself when opts changes nothing.
func New(opts Options, next http.Handler) http.Handler {
	if len(opts.Parameters) == 0 && opts.Method == "" {
		return next
	}
	m := &mapper{opts: opts, next: next}
	for _, p := range opts.Parameters {
		if p.TargetKind == "header" {
			m.headerTargets = true
		} else {
			m.queryTargets = append(m.queryTargets, p.TargetName)
		}
	}
	return m
}

type mapper struct {
	opts Options
	next http.Handler
	// headerTargets and queryTargets say what the mappings change, so
	// that only that is copied.
	headerTargets bool
	queryTargets  []string
}

// ServeHTTP sends the backend a copy of r with every mapped target set
// from its source. Each target is first removed from the partner's
// request: a header the gateway asserts (a client address, a tenant taken
// from elsewhere) must never come from the partner, even when the
// mapping's source is absent.
func (m *mapper) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// A copy of what changes: the access log and metrics keep the
	// partner's request.
	out := r.WithContext(r.Context())
	if m.opts.Method != "" {
		out.Method = m.opts.Method
	}
	if m.headerTargets {
		out.Header = r.Header.Clone()
	}
	if len(m.queryTargets) > 0 {
		u := *r.URL
		out.URL = &u
	}
	var query url.Values  // the partner's, parsed once when a mapping reads it
	var querySet []string // escaped name=value pairs to append
	for _, p := range m.opts.Parameters {
		if p.TargetKind == "header" {
			out.Header.Del(p.TargetName)
		}
	}
	for _, p := range m.opts.Parameters {
		val, ok := sourceValue(w, r, p, &query)
		if !ok {
			// API Gateway sends nothing for a source the request lacks.
			continue
		}
		switch p.TargetKind {
		case "header":
			if !httpguts.ValidHeaderFieldValue(val) {
				// A partner's %0d%0a in a query mapped to a header: the
				// partner's mistake, not a backend failure.
				observe.RecordFrom(r.Context()).Error = "request parameter not valid in header " + p.TargetName
				gwresponse.WriteMessage(w, gwresponse.BadRequestParameters, "Invalid request parameter: "+p.SourceKind+" "+p.SourceName+" cannot be sent as header "+p.TargetName)
				return
			}
			out.Header.Set(p.TargetName, val)
		case "querystring":
			querySet = append(querySet, url.QueryEscape(p.TargetName)+"="+url.QueryEscape(val))
		}
	}
	if len(m.queryTargets) > 0 {
		out.URL.RawQuery = rewriteQuery(r.URL.RawQuery, m.queryTargets, querySet)
	}
	m.next.ServeHTTP(w, out)
}

// rewriteQuery drops the pairs of raw named in targets and appends set,
// keeping the partner's other pairs byte for byte and in their order
// (url.Values.Encode would sort them and lose pairs it cannot parse).
func rewriteQuery(raw string, targets, set []string) string {
	var b strings.Builder
	for pair := range strings.SplitSeq(raw, "&") {
		if pair == "" {
			continue
		}
		key, _, _ := strings.Cut(pair, "=")
		if k, err := url.QueryUnescape(key); err == nil {
			key = k
		}
		if slices.Contains(targets, key) {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(pair)
	}
	for _, pair := range set {
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(pair)
	}
	return b.String()
}

func sourceValue(w http.ResponseWriter, r *http.Request, p Mapping, query *url.Values) (string, bool) {
	switch p.SourceKind {
	case "literal":
		return p.SourceName, true
	case "context":
		switch p.SourceName {
		case "requestId":
			// Set by the outermost middleware on every response.
			v := w.Header().Get("X-Amzn-Requestid")
			return v, v != ""
		case "identity.sourceIp":
			// The TCP peer, as the ip rules see it; never X-Forwarded-For.
			ap, err := netip.ParseAddrPort(r.RemoteAddr)
			if err != nil {
				return "", false
			}
			return ap.Addr().Unmap().WithZone("").String(), true
		}
	case "header":
		v := r.Header.Values(p.SourceName)
		if len(v) == 0 {
			return "", false
		}
		return strings.Join(v, ","), true
	case "querystring":
		if *query == nil {
			*query = r.URL.Query()
		}
		if !query.Has(p.SourceName) {
			return "", false
		}
		return query.Get(p.SourceName), true
	case "path":
		v := r.PathValue(p.SourceName)
		return v, v != ""
	}
	return "", false
}
