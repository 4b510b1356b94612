package openapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// IPRules are the addresses a resource policy lets call a route: Deny
// wins, and a non-empty Allow must match (drawbridge's ip: rules).
type IPRules struct {
	Allow []string
	Deny  []string
}

// everyone is how an implicit deny is written as IP rules.
var everyone = []string{"0.0.0.0/0", "::/0"}

// policy is x-amazon-apigateway-policy, an IAM resource policy. It is
// decoded strictly: an element drawbridge does not evaluate (NotResource,
// NotAction, NotPrincipal, a misspelt key) would change what the policy
// allows, so it fails the import instead of being ignored.
type policy struct {
	Version   string
	ID        string `json:"Id"`
	Statement []statement
}

type statement struct {
	Sid       string
	Version   string
	Effect    string
	Principal any
	Action    stringList
	Resource  stringList
	Condition map[string]map[string]stringList
}

// stringList is an IAM value written as one string or a list of them.
type stringList []string

func (s *stringList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = []string{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("want a string or a list of strings, got %s", b)
	}
	*s = many
	return nil
}

// ipCond is a statement's source-address condition: the request matches
// when its address is in CIDRs, or not in them when Not.
type ipCond struct {
	CIDRs []string
	Not   bool
}

type parsedStatement struct {
	allow     bool
	resources []resource
	ip        *ipCond // nil: no condition
}

// parsePolicy reads the policy; statements that do not concern invoking
// the API are dropped. Conditions other than aws:SourceIp, and principals
// other than everyone, cannot be evaluated here: ignoring a Deny would
// open the API, ignoring an Allow's condition would widen it, so they
// fail the import.
func parsePolicy(raw any) ([]parsedStatement, error) {
	// The policy may be exported as an object or as a JSON string.
	if s, ok := raw.(string); ok {
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return nil, fmt.Errorf("not a JSON policy: %v", err)
		}
		raw = v
	}
	var p policy
	if m, ok := raw.(map[string]any); ok {
		if st, ok := m["Statement"].(map[string]any); ok {
			m["Statement"] = []any{st} // a single statement
		}
	}
	js, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%v (drawbridge evaluates Sid, Effect, Principal, Action, Resource and Condition only; NotAction, NotResource and NotPrincipal cannot be evaluated here)", err)
	}
	var out []parsedStatement
	for i, st := range p.Statement {
		where := fmt.Sprintf("Statement[%d]", i)
		if !invokes(st.Action) {
			continue
		}
		if !everyonePrincipal(st.Principal) {
			return nil, fmt.Errorf("%s: Principal %v: only \"*\" can be evaluated here (there are no IAM identities)", where, st.Principal)
		}
		ps := parsedStatement{}
		switch st.Effect {
		case "Allow":
			ps.allow = true
		case "Deny":
		default:
			return nil, fmt.Errorf("%s: Effect %q: want Allow or Deny", where, st.Effect)
		}
		for _, r := range st.Resource {
			ps.resources = append(ps.resources, parseResource(r))
		}
		for op, kv := range st.Condition {
			for key, vals := range kv {
				if !strings.EqualFold(key, "aws:SourceIp") || (op != "IpAddress" && op != "NotIpAddress") || ps.ip != nil {
					return nil, fmt.Errorf("%s: Condition %s %s cannot be evaluated here; only one IpAddress or NotIpAddress on aws:SourceIp can", where, op, key)
				}
				for _, v := range vals {
					if _, err := netip.ParsePrefix(v); err != nil {
						if _, err := netip.ParseAddr(v); err != nil {
							return nil, fmt.Errorf("%s: aws:SourceIp %q is not an address or CIDR", where, v)
						}
					}
				}
				ps.ip = &ipCond{CIDRs: vals, Not: op == "NotIpAddress"}
			}
		}
		out = append(out, ps)
	}
	return out, nil
}

func invokes(actions []string) bool {
	for _, a := range actions {
		switch strings.ToLower(a) {
		case "*", "execute-api:*", "execute-api:invoke":
			return true
		}
	}
	return false
}

func everyonePrincipal(p any) bool {
	switch v := p.(type) {
	case string:
		return v == "*"
	case map[string]any:
		aws, ok := v["AWS"]
		if !ok || len(v) != 1 {
			return false
		}
		if s, ok := aws.(string); ok {
			return s == "*"
		}
		if l, ok := aws.([]any); ok && len(l) == 1 {
			return l[0] == "*"
		}
	}
	return false
}

// resource is one Resource of a statement, as a glob where * stands for
// any text (slashes included) and ? for one character, as in IAM.
type resource struct {
	// glob is matched against "STAGE/METHOD/path" when the resource names
	// this API ("execute-api:/prod/GET/pets/*", or a full ARN whose
	// region, account and API id are written out), and against the whole
	// ARN "arn:PARTITION:execute-api:REGION:ACCOUNT:APIID/STAGE/METHOD/path"
	// when full is set (a short ARN such as "arn:aws:execute-api:*", or
	// one with wildcards before the stage).
	glob string
	full bool
}

// parseResource reads "execute-api:/prod/GET/pets/*" or
// "arn:aws:execute-api:eu-west-1:123:abc/prod/GET/pets/*".
func parseResource(r string) resource {
	if rest, ok := strings.CutPrefix(r, "execute-api:/"); ok {
		return resource{glob: rest}
	}
	parts := strings.SplitN(r, ":", 6)
	if len(parts) == 6 && parts[0] == "arn" && parts[2] == "execute-api" {
		id, rest, ok := strings.Cut(parts[5], "/")
		// The policy is attached to this API: written-out region, account
		// and API id are this API's.
		if ok && !strings.ContainsAny(parts[1]+parts[3]+parts[4]+id, "*?") {
			return resource{glob: rest}
		}
	}
	return resource{glob: r, full: true}
}

// stage is the stage the resource names, when it names exactly one
// (no wildcard in it); "" otherwise.
func (r resource) stage() string {
	rest := r.glob
	if r.full {
		parts := strings.SplitN(r.glob, ":", 6)
		if len(parts) != 6 {
			return ""
		}
		var ok bool
		if _, rest, ok = strings.Cut(parts[5], "/"); !ok {
			return ""
		}
	}
	st, _, _ := strings.Cut(rest, "/")
	if st == "" || strings.ContainsAny(st, "*?") {
		return ""
	}
	return st
}

// policyStage is the stage a route is evaluated for. With no stage given,
// a policy naming one concrete stage is evaluated for it, and one naming
// several fails: merging every stage's statements would let one stage's
// Allow open another stage's routes.
func policyStage(sts []parsedStatement, stage string) (string, error) {
	if stage != "" {
		return stage, nil
	}
	var named []string
	for _, st := range sts {
		for _, r := range st.resources {
			if s := r.stage(); s != "" {
				named = append(named, s)
			}
		}
	}
	named = dedupe(named)
	switch len(named) {
	case 0:
		return "", nil
	case 1:
		return named[0], nil
	}
	return "", fmt.Errorf("the resource policy names stages %s; give the stage being imported (--stage, or stage: in the apis: entry) so that only its statements apply", strings.Join(named, ", "))
}

// tokKind is what one element of a request's resource name is.
type tokKind uint8

const (
	tokLit    tokKind = iota // one known byte
	tokSeg                   // one or more bytes without '/': a {param}, or a stage or ARN field not known here
	tokGreedy                // one or more bytes: {proxy+}
)

type tok struct {
	kind tokKind
	c    byte
}

func litToks(out []tok, s string) []tok {
	for i := range len(s) {
		out = append(out, tok{kind: tokLit, c: s[i]})
	}
	return out
}

// subject is the resource name of every request the route can serve, as
// tokens: "STAGE/METHOD/path", or the whole ARN when r is full. A route
// template's {param} is one path segment, {proxy+} one or more. The ARN's
// partition, region, account and API id are the ones r writes out (the
// policy is attached to this API), or unknown where r has a wildcard.
func subject(r resource, stage, method, path string) []tok {
	var out []tok
	if r.full {
		fields := strings.SplitN(r.glob, ":", 6)
		field := func(i int) {
			switch {
			case i == 5 && len(fields) == 6:
				if id, _, ok := strings.Cut(fields[5], "/"); ok && !strings.ContainsAny(id, "*?") {
					out = litToks(out, id)
					return
				}
			case i < len(fields) && i < 5 && !strings.ContainsAny(fields[i], "*?"):
				out = litToks(out, fields[i])
				return
			}
			out = append(out, tok{kind: tokSeg})
		}
		out = litToks(out, "arn:")
		field(1)
		out = litToks(out, ":execute-api:")
		field(3)
		out = litToks(out, ":")
		field(4)
		out = litToks(out, ":")
		field(5)
		out = litToks(out, "/")
	}
	if stage == "" {
		out = append(out, tok{kind: tokSeg})
	} else {
		out = litToks(out, stage)
	}
	out = litToks(out, "/"+method+"/")
	path = strings.TrimPrefix(path, "/")
	for path != "" {
		open := strings.IndexByte(path, '{')
		end := strings.IndexByte(path, '}')
		if open < 0 || end < open {
			out = litToks(out, path)
			break
		}
		out = litToks(out, path[:open])
		if strings.HasSuffix(path[open:end], "+") {
			out = append(out, tok{kind: tokGreedy})
		} else {
			out = append(out, tok{kind: tokSeg})
		}
		path = path[end+1:]
	}
	return out
}

// class is a set of bytes in an intersection check.
type class struct {
	any     bool // every byte
	noSlash bool // every byte but '/'
	c       byte // else this one
	star    bool // repeated zero or more times, else exactly once
}

func (a class) meets(b class) bool {
	switch {
	case !a.any && !a.noSlash && !b.any && !b.noSlash:
		return a.c == b.c
	case !a.any && !a.noSlash:
		return !b.noSlash || a.c != '/'
	case !b.any && !b.noSlash:
		return !a.noSlash || b.c != '/'
	}
	return true
}

func globClasses(glob string) []class {
	out := make([]class, 0, len(glob))
	for i := range len(glob) {
		switch glob[i] {
		case '*':
			out = append(out, class{any: true, star: true})
		case '?':
			out = append(out, class{any: true})
		default:
			out = append(out, class{c: glob[i]})
		}
	}
	return out
}

func subjectClasses(toks []tok) []class {
	out := make([]class, 0, len(toks)+4)
	for _, t := range toks {
		switch t.kind {
		case tokLit:
			out = append(out, class{c: t.c})
		case tokSeg:
			out = append(out, class{noSlash: true}, class{noSlash: true, star: true})
		case tokGreedy:
			out = append(out, class{any: true}, class{any: true, star: true})
		}
	}
	return out
}

// couldMatch reports whether glob matches at least one request the
// subject stands for: the two patterns' languages intersect. It walks the
// product of both automata; a byte both stars would loop on changes no
// state, so it never needs to be taken.
func couldMatch(glob string, toks []tok) bool {
	p, q := globClasses(glob), subjectClasses(toks)
	seen := make([]bool, (len(p)+1)*(len(q)+1))
	var walk func(i, j int) bool
	walk = func(i, j int) bool {
		k := i*(len(q)+1) + j
		if seen[k] {
			return false
		}
		seen[k] = true
		if i == len(p) && j == len(q) {
			return true
		}
		if i < len(p) && p[i].star && walk(i+1, j) {
			return true
		}
		if j < len(q) && q[j].star && walk(i, j+1) {
			return true
		}
		if i == len(p) || j == len(q) || !p[i].meets(q[j]) {
			return false
		}
		switch {
		case p[i].star && !q[j].star:
			return walk(i, j+1)
		case !p[i].star && q[j].star:
			return walk(i+1, j)
		case !p[i].star && !q[j].star:
			return walk(i+1, j+1)
		}
		return false
	}
	return walk(0, 0)
}

// alwaysMatches reports whether glob matches every request the subject
// stands for. It is sound, not complete: a {param} or unknown field counts
// as matched only inside one of the glob's stars, so an Allow is never
// taken wider than it is written.
func alwaysMatches(glob string, toks []tok) bool {
	seen := make([]bool, (len(glob)+1)*(len(toks)+1))
	var walk func(i, j int) bool
	walk = func(i, j int) bool {
		k := i*(len(toks)+1) + j
		if seen[k] {
			return false
		}
		seen[k] = true
		switch {
		case i == len(glob):
			return j == len(toks)
		case glob[i] == '*':
			return walk(i+1, j) || (j < len(toks) && walk(i, j+1))
		case j == len(toks) || toks[j].kind != tokLit:
			return false
		case glob[i] == '?' || glob[i] == toks[j].c:
			return walk(i+1, j+1)
		}
		return false
	}
	return walk(0, 0)
}

// anyMethods are the methods an ANY route is checked for.
var anyMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// couldMatch reports whether one of st's resources names some request the
// route serves for method in stage ("" for any stage).
func (st parsedStatement) couldMatch(stage, method, path string) bool {
	for _, r := range st.resources {
		if couldMatch(r.glob, subject(r, stage, method, path)) {
			return true
		}
	}
	return false
}

// alwaysMatches reports whether one of st's resources names every request
// the route serves for method in stage.
func (st parsedStatement) alwaysMatches(stage, method, path string) bool {
	for _, r := range st.resources {
		if alwaysMatches(r.glob, subject(r, stage, method, path)) {
			return true
		}
	}
	return false
}

// routeIPRules evaluates the policy for one route: which addresses may
// call it. Nil means anyone. A route is a template standing for many
// requests (/orders/{id}, /{proxy+}) while drawbridge's ip rules apply to
// the whole route, so the policy is applied failing closed: a Deny that
// could match any request of the route applies to all of it, and an Allow
// counts only if it matches every request of it. stage "" stands for any
// stage.
func routeIPRules(sts []parsedStatement, stage, method, path string) (*IPRules, error) {
	methods := []string{method}
	if method == "ANY" {
		methods = anyMethods
	}
	matches := func(st parsedStatement) bool {
		for _, m := range methods {
			if st.allow && !st.alwaysMatches(stage, m, path) {
				return false
			}
			if !st.allow && st.couldMatch(stage, m, path) {
				return true
			}
		}
		return st.allow
	}
	allowAll := false
	var allow, deny []string
	var allowNot, denyNot [][]string
	for _, st := range sts {
		if !matches(st) {
			continue
		}
		switch {
		case st.allow && st.ip == nil:
			allowAll = true
		case st.allow && !st.ip.Not:
			allow = append(allow, st.ip.CIDRs...)
		case st.allow:
			allowNot = append(allowNot, st.ip.CIDRs)
		case st.ip == nil:
			return &IPRules{Deny: everyone}, nil
		case !st.ip.Not:
			deny = append(deny, st.ip.CIDRs...)
		default:
			denyNot = append(denyNot, st.ip.CIDRs)
		}
	}
	switch {
	case len(allowNot) > 1 || len(denyNot) > 1 || (len(allowNot) == 1 && (allowAll || len(allow) > 0)):
		return nil, fmt.Errorf("the resource policy combines NotIpAddress conditions in a way drawbridge's ip rules cannot express; simplify it")
	case len(allowNot) == 1:
		// Allowed from anywhere but these: deny them.
		deny = append(deny, allowNot[0]...)
		allowAll = true
	}
	if len(denyNot) == 1 {
		// Denied from anywhere but these: only these may be allowed.
		switch {
		case allowAll:
			allow, allowAll = denyNot[0], false
		case len(allow) > 0:
			if !sameSet(allow, denyNot[0]) {
				return nil, fmt.Errorf("the resource policy allows some addresses and denies all but others; drawbridge's ip rules cannot express that intersection; simplify it")
			}
		}
	}
	switch {
	case allowAll && len(deny) == 0:
		return nil, nil
	case allowAll:
		return &IPRules{Deny: dedupe(deny)}, nil
	case len(allow) == 0:
		// No statement allows it: API Gateway's implicit deny.
		return &IPRules{Deny: everyone}, nil
	}
	return &IPRules{Allow: dedupe(allow), Deny: dedupe(deny)}, nil
}

func sameSet(a, b []string) bool {
	return slices.Equal(dedupe(a), dedupe(b))
}

func dedupe(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}
