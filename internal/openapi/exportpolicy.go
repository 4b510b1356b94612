package openapi

import (
	"fmt"
	"slices"
	"strings"
)

// exportPolicy writes the routes' ip rules as x-amazon-apigateway-policy,
// or nil when no route has any. IAM resources are globs whose * spans
// path segments, so a statement written for /orders/{id} also concerns
// /orders/{id}/items: the policy is read back as Import would, and routes
// it would not give their own rules fail the export, rather than a
// definition that opens or closes routes it did not mean to.
func exportPolicy(routes []Route) (map[string]any, error) {
	if !slices.ContainsFunc(routes, func(r Route) bool { return r.IP != nil }) {
		return nil, nil
	}
	statements := []any{}
	for _, r := range routes {
		method := r.Method
		if method == "ANY" {
			method = "*"
		}
		res := "execute-api:/*/" + method + "/" + resourcePath(r.Path)
		stmt := func(effect, op string, cidrs []string) map[string]any {
			s := map[string]any{"Effect": effect, "Principal": "*", "Action": "execute-api:Invoke", "Resource": res}
			if op != "" {
				s["Condition"] = map[string]any{op: map[string]any{"aws:SourceIp": slices.Clone(cidrs)}}
			}
			return s
		}
		switch ip := r.IP; {
		case ip == nil:
			statements = append(statements, stmt("Allow", "", nil))
		case len(ip.Allow) == 0 && sameSet(ip.Deny, everyone):
			// No statement: API Gateway's implicit deny.
		case len(ip.Allow) == 0:
			statements = append(statements, stmt("Allow", "NotIpAddress", ip.Deny))
		default:
			statements = append(statements, stmt("Allow", "IpAddress", ip.Allow))
			if len(ip.Deny) > 0 {
				statements = append(statements, stmt("Deny", "IpAddress", ip.Deny))
			}
		}
	}
	doc := map[string]any{"Version": "2012-10-17", "Statement": statements}
	sts, err := parsePolicy(doc)
	if err != nil {
		return nil, fmt.Errorf("resource policy: %w", err)
	}
	var wrong []string
	for _, r := range routes {
		got, err := routeIPRules(sts, "", r.Method, r.Path)
		if err != nil || !sameRules(got, r.IP) {
			wrong = append(wrong, r.Method+" "+r.Path)
		}
	}
	if len(wrong) > 0 {
		return nil, fmt.Errorf("the ip rules of %s cannot be written as a resource policy: its resources (execute-api:/*/METHOD/path, each {param} a *) would also apply to other routes; give those routes the same ip rules, or remove ip from the config to export", strings.Join(wrong, ", "))
	}
	return doc, nil
}

// resourcePath is a route template as an IAM resource path: each
// {param} and {proxy+} is a *.
func resourcePath(path string) string {
	path = strings.TrimPrefix(path, "/")
	return pathParam.ReplaceAllString(path, "*")
}

func sameRules(a, b *IPRules) bool {
	if a == nil || b == nil {
		return a == b
	}
	return sameSet(a.Allow, b.Allow) && sameSet(a.Deny, b.Deny)
}
