package router

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// AnyMethod in Route.Methods matches every request method, as API
// Gateway's ANY method does.
const AnyMethod = "ANY"

// Route is one entry of the routing table; Handler is its prebuilt
// handler chain.
type Route struct {
	// Name identifies the route in errors; it may be empty.
	Name string
	// Host restricts the route to requests for this host, compared
	// case-insensitively with the request's Host header without its port.
	// Empty means any host.
	Host string
	// Methods are upper-case HTTP methods; AnyMethod matches all of them.
	// HEAD is not implied by GET.
	Methods []string
	// Path is a template as accepted by ParseTemplate.
	Path string
	// Handler serves the requests routed here. It must not be nil.
	Handler http.Handler
}

// Router is an http.Handler that dispatches to the Route matching a
// request's host, path and method. It is safe for concurrent use and
// immutable after New.
type Router struct {
	routes  []compiled
	hosts   map[string]*node // lower-case host -> tree of host-specific routes
	anyHost *node            // tree of routes without Host
	noMatch http.Handler
}

var _ http.Handler = (*Router)(nil)

// compiled is a Route with its parsed template.
type compiled struct {
	Route
	tmpl Template
}

// node is one position in a resource tree. Children are tried in order of
// specificity: literal, then {param}, then {greedy+}.
type node struct {
	literals map[string]*node // keyed by decoded literal
	litList  []litChild       // the same children, for decoding comparisons
	param    *node
	greedy   *resource
	res      *resource // resource whose template ends here, if any
}

type litChild struct {
	lit  string
	node *node
}

// resource is one path shape with the methods declared on it, possibly by
// several routes.
type resource struct {
	methods []methodRoute
	any     *compiled
}

type methodRoute struct {
	method string
	route  *compiled
}

// New builds a Router from routes. noMatch answers requests for which no
// resource matches and requests whose method the matching resource does
// not declare.
//
// New reports every bad template, bad method or host, nil handler, and
// duplicate: two routes with the same host and path shape (templates equal
// up to parameter names) declaring the same method. ANY may sit beside
// specific methods on a resource; a specific method wins, as in API Gateway.
func New(routes []Route, noMatch http.Handler) (*Router, error) {
	if noMatch == nil {
		return nil, errors.New("router: nil noMatch handler")
	}
	r := &Router{
		routes:  make([]compiled, len(routes)),
		hosts:   make(map[string]*node),
		anyHost: &node{},
		noMatch: noMatch,
	}
	var errs []error
	for i := range routes {
		c := &r.routes[i]
		c.Route = routes[i]
		c.Methods = append([]string(nil), routes[i].Methods...)
		if err := r.add(c); err != nil {
			errs = append(errs, fmt.Errorf("route %s: %w", label(routes[i], i), err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}

func label(rt Route, i int) string {
	if rt.Name != "" {
		return fmt.Sprintf("%q", rt.Name)
	}
	return fmt.Sprintf("#%d (%s)", i, rt.Path)
}

func (r *Router) add(c *compiled) error {
	if c.Handler == nil {
		return errors.New("nil handler")
	}
	tmpl, err := ParseTemplate(c.Path)
	if err != nil {
		return err
	}
	c.tmpl = tmpl
	if err := checkMethods(c.Methods); err != nil {
		return err
	}
	host, err := normalizeHost(c.Host)
	if err != nil {
		return err
	}
	root := r.anyHost
	if host != "" {
		root = r.hosts[host]
		if root == nil {
			root = &node{}
			r.hosts[host] = root
		}
	}
	res := root.insert(tmpl.segs)
	for _, m := range c.Methods {
		if prev := res.find(m); prev != nil {
			return fmt.Errorf("duplicate of route %s: %s, path %q: method %s overlaps %s",
				label(prev.Route, r.index(prev)), hostLabel(host), c.Path, m, strings.Join(prev.Methods, ","))
		}
	}
	for _, m := range c.Methods {
		if m == AnyMethod {
			res.any = c
		} else {
			res.methods = append(res.methods, methodRoute{method: m, route: c})
		}
	}
	return nil
}

func hostLabel(h string) string {
	if h == "" {
		return "any host"
	}
	return fmt.Sprintf("host %q", h)
}

func (r *Router) index(c *compiled) int {
	for i := range r.routes {
		if &r.routes[i] == c {
			return i
		}
	}
	return -1
}

func checkMethods(methods []string) error {
	if len(methods) == 0 {
		return errors.New("no methods; use [ANY] for all")
	}
	for i, m := range methods {
		if m == "" || strings.ToUpper(m) != m || strings.ContainsFunc(m, func(c rune) bool { return c > '~' || c <= ' ' }) {
			return fmt.Errorf("method %q: must be an upper-case HTTP method or ANY", m)
		}
		for _, prev := range methods[:i] {
			if prev == m {
				return fmt.Errorf("method %s listed twice", m)
			}
		}
		if m == AnyMethod && len(methods) > 1 {
			return errors.New("ANY already covers every method; list it alone")
		}
	}
	return nil
}

// normalizeHost lower-cases h, drops IPv6 brackets and a trailing dot, and
// rejects ports and wildcards.
func normalizeHost(h string) (string, error) {
	if h == "" {
		return "", nil
	}
	orig := h
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	switch {
	case h == "":
		return "", fmt.Errorf("host %q: empty", orig)
	case strings.Contains(h, "*"):
		return "", fmt.Errorf("host %q: wildcards are not supported", orig)
	case strings.ContainsAny(h, "/ "):
		return "", fmt.Errorf("host %q: not a host name", orig)
	case strings.Contains(h, ":") && net.ParseIP(h) == nil:
		return "", fmt.Errorf("host %q: must not include a port", orig)
	}
	return h, nil
}

func (n *node) insert(segs []segment) *resource {
	for _, s := range segs {
		switch s.kind {
		case segLiteral:
			child := n.literals[s.lit]
			if child == nil {
				if n.literals == nil {
					n.literals = make(map[string]*node)
				}
				child = &node{}
				n.literals[s.lit] = child
				n.litList = append(n.litList, litChild{lit: s.lit, node: child})
			}
			n = child
		case segParam:
			if n.param == nil {
				n.param = &node{}
			}
			n = n.param
		case segGreedy:
			// ParseTemplate guarantees the greedy segment is last.
			if n.greedy == nil {
				n.greedy = &resource{}
			}
			return n.greedy
		}
	}
	if n.res == nil {
		n.res = &resource{}
	}
	return n.res
}

// find returns the route that already declares exactly method m on res.
// ANY clashes only with ANY: API Gateway lets a resource have ANY beside
// specific methods, and the specific ones take precedence (see route).
func (res *resource) find(m string) *compiled {
	if m == AnyMethod {
		return res.any
	}
	for _, mr := range res.methods {
		if mr.method == m {
			return mr.route
		}
	}
	return nil
}

// route returns the route serving method m on res, or nil.
func (res *resource) route(m string) *compiled {
	for _, mr := range res.methods {
		if mr.method == m {
			return mr.route
		}
	}
	return res.any
}

// ServeHTTP routes req: on a match it stores the route's parameters with
// req.SetPathValue and calls the route's Handler, otherwise noMatch.
func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if rt, ok := r.Match(req); ok {
		rt.Handler.ServeHTTP(w, req)
		return
	}
	r.noMatch.ServeHTTP(w, req)
}

// Match returns the route for req and stores its parameters with
// req.SetPathValue, a greedy {name+} under name. It reports false when no
// resource matches or the matching resource does not declare req.Method.
// A resource for req's host is preferred over one of the host-less routes,
// and once found it alone decides the method.
func (r *Router) Match(req *http.Request) (*Route, bool) {
	if req.URL == nil {
		return nil, false
	}
	var m matcher
	path := req.URL.Path
	// Without RawPath the decoded path holds no encoded "/", so it splits
	// into the decoded segments directly and nothing needs decoding.
	if req.URL.RawPath != "" {
		path = req.URL.EscapedPath()
		m.encoded = true
	}
	switch {
	case path == "":
		path = "/"
	case path[0] != '/':
		return nil, false // e.g. "OPTIONS *"
	}
	// API Gateway ignores one trailing slash.
	if len(path) > 1 && path[len(path)-1] == '/' {
		path = path[:len(path)-1]
	}
	if path == "/" {
		path = ""
	}

	var res *resource
	if len(r.hosts) > 0 {
		if root := r.hostTree(req.Host); root != nil {
			res = m.match(root, path, 0)
		}
	}
	if res == nil {
		res = m.match(r.anyHost, path, 0)
	}
	if res == nil {
		return nil, false
	}
	c := res.route(req.Method)
	if c == nil {
		return nil, false
	}
	for i, name := range c.tmpl.params {
		req.SetPathValue(name, m.value(i))
	}
	return &c.Route, true
}

// hostTree returns the tree for the host part of hostport, or nil.
func (r *Router) hostTree(hostport string) *node {
	h := hostport
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i > 0 {
			h = h[1:i]
		}
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.IndexByte(h, ':') == i {
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	if root, ok := r.hosts[h]; ok {
		return root
	}
	// Most clients send lower-case hosts; only allocate for those that don't.
	if strings.ContainsFunc(h, func(c rune) bool { return 'A' <= c && c <= 'Z' }) {
		return r.hosts[strings.ToLower(h)]
	}
	return nil
}

// matcher walks a tree and remembers the segments captured for
// parameters, by their position among the template's parameters.
type matcher struct {
	encoded bool // path segments are percent-encoded
	caps    [maxParams]string
}

// match returns the most specific resource under n for rest, a path that
// is empty or starts with "/".
func (m *matcher) match(n *node, rest string, k int) *resource {
	if rest == "" {
		return n.res
	}
	seg, tail := rest[1:], ""
	if i := strings.IndexByte(seg, '/'); i >= 0 {
		seg, tail = seg[:i], seg[i:]
	}
	// Empty and dot segments match nothing, so that "/a/../b" can never
	// reach an upstream that would resolve it to "/b".
	if seg == "" || m.isDot(seg) {
		return nil
	}
	if child := m.literal(n, seg); child != nil {
		if res := m.match(child, tail, k); res != nil {
			return res
		}
	}
	if n.param != nil && k < maxParams {
		m.caps[k] = seg
		if res := m.match(n.param, tail, k+1); res != nil {
			return res
		}
	}
	if n.greedy != nil && k < maxParams && m.cleanTail(tail) {
		m.caps[k] = rest[1:]
		return n.greedy
	}
	return nil
}

func (m *matcher) literal(n *node, seg string) *node {
	if len(n.litList) == 0 {
		return nil
	}
	if !m.encoded || strings.IndexByte(seg, '%') < 0 {
		return n.literals[seg]
	}
	for _, lc := range n.litList {
		if decodedEqual(seg, lc.lit) {
			return lc.node
		}
	}
	return nil
}

func (m *matcher) isDot(seg string) bool {
	if seg == "." || seg == ".." {
		return true
	}
	return m.encoded && len(seg) <= 6 && (decodedEqual(seg, ".") || decodedEqual(seg, ".."))
}

// cleanTail reports whether every segment of tail ("" or "/"-prefixed) is
// non-empty and not a dot segment.
func (m *matcher) cleanTail(tail string) bool {
	for tail != "" {
		seg := tail[1:]
		if i := strings.IndexByte(seg, '/'); i >= 0 {
			seg, tail = seg[:i], seg[i:]
		} else {
			tail = ""
		}
		if seg == "" || m.isDot(seg) {
			return false
		}
	}
	return true
}

// value returns the decoded value of capture i.
func (m *matcher) value(i int) string {
	v := m.caps[i]
	if !m.encoded {
		return v
	}
	// EscapedPath only returns validly encoded paths, so this cannot fail;
	// the raw form is the safest fallback if it ever did.
	if d, err := url.PathUnescape(v); err == nil {
		return d
	}
	return v
}
