package openapi

import (
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

// policy is x-amazon-apigateway-policy, an IAM resource policy.
type policy struct {
	Statement []statement
}

type statement struct {
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
	resources []string // glob patterns over "STAGE/METHOD/path"
	ip        *ipCond  // nil: no condition
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
	if err := json.Unmarshal(js, &p); err != nil {
		return nil, err
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
			ps.resources = append(ps.resources, resourcePattern(r))
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

// resourcePattern turns "execute-api:/prod/GET/pets/*" or
// "arn:aws:execute-api:eu-west-1:123:abc/prod/GET/pets/*" into the glob
// "prod/GET/pets/*".
func resourcePattern(r string) string {
	if i := strings.Index(r, "execute-api:/"); i >= 0 {
		return r[i+len("execute-api:/"):]
	}
	if strings.HasPrefix(r, "arn:") {
		parts := strings.SplitN(r, ":", 6)
		if len(parts) == 6 {
			if _, rest, ok := strings.Cut(parts[5], "/"); ok {
				return rest
			}
			return "*"
		}
	}
	return r
}

// globMatch matches s against a pattern where * stands for any text,
// slashes included, as in IAM resource ARNs.
func globMatch(pattern, s string) bool {
	// Iterative, with backtracking to the last star: linear enough for
	// the short patterns of a policy.
	p, i, star, mark := 0, 0, -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case p < len(pattern) && pattern[p] == s[i]:
			p++
			i++
		case star >= 0:
			p, mark = star+1, mark+1
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// anyMethods are the methods an ANY route is checked for.
var anyMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// matches reports whether one of st's resources names method and path in
// stage. With no stage given, the resource's own stage is taken as the
// route's: the policy then applies whichever stage serves it.
func (st parsedStatement) matches(stage, method, path string) bool {
	for _, r := range st.resources {
		s := stage
		if s == "" {
			s, _, _ = strings.Cut(r, "/")
		}
		if globMatch(r, s+"/"+method+"/"+strings.TrimPrefix(path, "/")) {
			return true
		}
	}
	return false
}

// routeIPRules evaluates the policy for one route: which addresses may
// call it. Nil means anyone. stage is matched against the resource's
// stage part; "" matches any.
func routeIPRules(sts []parsedStatement, stage, method, path string) (*IPRules, error) {
	methods := []string{method}
	if method == "ANY" {
		methods = anyMethods
	}
	// A statement concerns an ANY route if it concerns one of its methods
	// (a Deny: refuse rather than let through) or, for an Allow, all of
	// them (allow no more than the policy does).
	matches := func(st parsedStatement) bool {
		n := 0
		for _, m := range methods {
			if st.matches(stage, m, path) {
				n++
			}
		}
		if st.allow {
			return n == len(methods)
		}
		return n > 0
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
