package config

import (
	"errors"
	"fmt"
	"maps"
	"net/textproto"
	"slices"
	"strings"

	"github.com/drawbridge-gw/drawbridge/internal/gwresponse"
	"github.com/drawbridge-gw/drawbridge/internal/integration"
	"github.com/drawbridge-gw/drawbridge/internal/openapi"
	"github.com/drawbridge-gw/drawbridge/internal/validate"
)

// apis imports every definition under apis: and appends its routes to the
// config's, so that they are defaulted and checked like hand-written ones
// (a clash with a hand-written route is reported at the apis line).
// Messages name the config line and the definition's file, line, path and
// method.
func (v *validator) apis() {
	for typ := range v.cfg.GatewayResponses {
		if v.gatewayResponseOrigin == nil {
			v.gatewayResponseOrigin = map[string]string{}
		}
		v.gatewayResponseOrigin[typ] = fmt.Sprintf("under gateway_responses: at line %d", v.cfg.GatewayResponses[typ].lineOr(v.topLine("gateway_responses")))
	}
	for i, a := range v.cfg.APIs {
		if a == nil {
			continue
		}
		obj := fmt.Sprintf("apis[%d]", i)
		if a.OpenAPI == "" {
			if !v.bad[&a.OpenAPI] {
				v.add(a.Line, "%s: openapi is required: the definition file, e.g. openapi: petstore.yaml", obj)
			}
			continue
		}
		written := a.OpenAPI
		n := len(v.problems)
		v.file(&a.OpenAPI, obj, "openapi", a.Line)
		if len(v.problems) > n {
			continue
		}
		obj = fmt.Sprintf("apis[%d] (%s)", i, written)
		line := v.line(&a.OpenAPI, a.Line)
		upsOK := true
		for _, key := range sortedKeys(a.Upstreams) {
			name := a.Upstreams[key]
			if v.cfg.Upstreams[name] == nil {
				v.add(v.line(&a.Upstreams, a.Line), "%s: upstreams: %q maps to upstream %q, which is not defined under upstreams:", obj, key, name)
				upsOK = false
			}
		}
		api, err := openapi.Import(a.OpenAPI, openapi.Options{
			Upstreams:              a.Upstreams,
			Stage:                  a.Stage,
			StageVariables:         a.StageVariables,
			SkipUnsupported:        a.SkipUnsupported,
			AcceptSkipVerification: a.AcceptSkipVerification,
		})
		var ie *openapi.Error
		switch {
		case errors.As(err, &ie):
			for _, p := range ie.Problems {
				p.File = written
				v.add(line, "%s", p.String())
			}
			continue
		case err != nil:
			v.add(line, "%s: %v", obj, err)
			continue
		}
		if !upsOK {
			continue
		}
		for _, u := range api.Upstreams {
			if !u.Mapped {
				v.add(v.line(&a.Upstreams, line), "%s: its backend %q (%s) is not mapped to an upstream: add upstreams: {%q: NAME} naming an entry of upstreams: that says how to reach and verify it", obj, u.Key, u.Target, u.Key)
				continue
			}
			if uc := v.cfg.Upstreams[u.Name]; u.ServerName != "" && uc.TLS.ServerName == "" {
				// The definition says which name to verify; the upstream
				// does not say otherwise.
				uc.TLS.ServerName = u.ServerName
			}
		}
		for _, typ := range sortedKeys(api.GatewayResponses) {
			gr := api.GatewayResponses[typ]
			if prev := v.cfg.GatewayResponses[typ]; prev != nil {
				// Several stages of one definition (several apis: entries
				// naming it) bring the same responses: one is enough.
				// Gateway responses apply gateway-wide, so different
				// ones clash.
				if prev.Status != gr.Status || prev.Body != gr.Body || !maps.Equal(prev.Headers, gr.Headers) {
					v.add(line, "%s: gateway response %s is also set %s, differently; gateway responses apply to the whole gateway: set it in one place", obj, typ, v.gatewayResponseOrigin[typ])
				}
				continue
			}
			if v.cfg.GatewayResponses == nil {
				v.cfg.GatewayResponses = map[string]*GatewayResponse{}
			}
			v.cfg.GatewayResponses[typ] = &GatewayResponse{Line: line, Status: gr.Status, Headers: gr.Headers, Body: gr.Body}
			if v.gatewayResponseOrigin == nil {
				v.gatewayResponseOrigin = map[string]string{}
			}
			v.gatewayResponseOrigin[typ] = "by " + obj
		}
		for _, w := range api.Warnings {
			w.File = written
			v.cfg.importWarnings = append(v.cfg.importWarnings, Problem{File: v.report.file, Line: line, Msg: w.String()}.String())
		}
		for _, s := range api.Skipped {
			s.File = written
			v.cfg.importWarnings = append(v.cfg.importWarnings, Problem{File: v.report.file, Line: line, Msg: "skipped (skip_unsupported): " + s.String()}.String())
		}
		bases, ok := v.basePaths(a, obj)
		if !ok {
			continue
		}
		n = len(v.problems)
		v.throttle(a.Throttle, obj, "throttle", a.Line)
		if len(v.problems) > n {
			continue // not once more for each route
		}
		for _, base := range bases {
			for _, r := range api.Routes {
				rc := v.importedRoute(r, line)
				rc.Path = openapi.JoinBasePath(base, r.Path)
				rc.LimitID = fmt.Sprintf("apis[%d] %s %s %s", i, a.Stage, r.Method, r.Path)
				rc.PlanPath = r.Path
				if a.Throttle != nil {
					t := *a.Throttle
					rc.Throttle = &t
				}
				v.cfg.Routes = append(v.cfg.Routes, rc)
			}
		}
	}
}

// basePaths checks a's base_paths and applies the default.
func (v *validator) basePaths(a *API, obj string) ([]string, bool) {
	if len(a.BasePaths) == 0 {
		return []string{"/"}, true
	}
	line := v.line(&a.BasePaths, a.Line)
	ok := true
	for i, b := range a.BasePaths {
		if err := openapi.CheckBasePath(b); err != nil {
			v.add(line, "%s: base_paths: %v", obj, err)
			ok = false
		}
		if slices.Contains(a.BasePaths[:i], b) {
			v.add(line, "%s: base_paths: %q is listed twice", obj, b)
			ok = false
		}
	}
	return a.BasePaths, ok
}

// importedRoute is r as a config route, written at the apis line.
func (v *validator) importedRoute(r openapi.Route, line int) *Route {
	rc := &Route{
		Line:              line,
		Path:              r.Path,
		Methods:           []string{r.Method},
		Upstream:          r.Upstream,
		UpstreamPath:      r.UpstreamPath,
		UpstreamMethod:    r.UpstreamMethod,
		APIKeyRequired:    r.APIKeyRequired,
		RequestParameters: r.RequestParameters,
		StatusMap:         r.StatusMap,
	}
	if r.Timeout > 0 {
		rc.Timeout = Duration(r.Timeout)
		v.lines[&rc.Timeout] = line // set, so the default does not replace it
	}
	if r.Validate != nil {
		rc.Validate = &RouteValidate{Line: line, RequiredHeaders: r.Validate.RequiredHeaders,
			RequiredQuerystrings: r.Validate.RequiredQuery, BodySchema: r.Validate.BodySchema}
	}
	if r.IP != nil {
		rc.IP = &IPRules{Line: line, Allow: r.IP.Allow, Deny: r.IP.Deny}
	}
	if r.Mock != nil {
		rc.Mock = &Mock{Line: line, Status: r.Mock.Status, Body: r.Mock.Body, Headers: r.Mock.Headers}
	}
	return rc
}

// apiRoute checks the route settings that come from API Gateway: mock,
// upstream_method, request_parameters and validate.
func (v *validator) apiRoute(r *Route, obj string, tmpl template, pathOK bool) {
	if m := r.Mock; m != nil {
		if r.Upstream != "" {
			v.add(v.line(&r.Upstream, r.Line), "%s: a route with mock answers itself; remove upstream, or remove mock to forward", obj)
		}
		for _, f := range []struct {
			set  bool
			name string
		}{{r.UpstreamPath != "", "upstream_path"}, {r.UpstreamMethod != "", "upstream_method"}, {len(r.RequestParameters) > 0, "request_parameters"}, {len(r.StatusMap) > 0, "status_map"}} {
			if f.set {
				v.add(r.Line, "%s: %s has no effect on a mock route (there is no backend request)", obj, f.name)
			}
		}
		switch {
		case !v.set(&m.Status):
			m.Status = 200
		case gwresponse.CheckStatus(m.Status) != nil:
			v.add(v.line(&m.Status, m.Line), "%s: mock.status: %v", obj, gwresponse.CheckStatus(m.Status))
		}
		for _, k := range sortedKeys(m.Headers) {
			if err := gwresponse.CheckHeader(k, m.Headers[k]); err != nil {
				v.add(v.line(&m.Headers, m.Line), "%s: mock.headers: %v", obj, err)
			}
		}
	}
	if r.UpstreamMethod != "" {
		r.UpstreamMethod = strings.ToUpper(strings.TrimSpace(r.UpstreamMethod))
		if !slices.Contains(validMethods, r.UpstreamMethod) || r.UpstreamMethod == "ANY" {
			v.add(v.line(&r.UpstreamMethod, r.Line), "%s: upstream_method %q: want one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS", obj, r.UpstreamMethod)
		}
	}
	if len(r.RequestParameters) > 0 {
		line := v.line(&r.RequestParameters, r.Line)
		maps, errs := integration.ParseParameters(r.RequestParameters)
		for _, e := range errs {
			v.add(line, "%s: %s", obj, e)
		}
		for _, m := range maps {
			if m.SourceKind == "path" && pathOK && !slices.Contains(tmpl.params, m.SourceName) {
				v.add(line, "%s: request_parameters: method.request.path.%s is not a parameter of path %q", obj, m.SourceName, r.Path)
			}
		}
	}
	if _, errs := integration.StatusMap(r.StatusMap); len(errs) > 0 {
		for _, e := range errs {
			v.add(v.line(&r.StatusMap, r.Line), "%s: %s", obj, e)
		}
	}
	if c := r.Validate; c != nil {
		for _, list := range []struct {
			key   string
			names []string
		}{{"required_headers", c.RequiredHeaders}, {"required_querystrings", c.RequiredQuerystrings}} {
			for _, n := range list.names {
				if strings.TrimSpace(n) == "" || (list.key == "required_headers" && !validHeaderName(n)) {
					v.add(c.Line, "%s: validate.%s: %q is not a valid name", obj, list.key, n)
				}
			}
		}
		if c.BodySchema != "" {
			if _, err := validate.CompileSchema(c.BodySchema); err != nil {
				v.add(v.line(&c.BodySchema, c.Line), "%s: validate.%v", obj, err)
			}
		}
	}
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c > 127 || c <= ' ' || strings.ContainsRune("\"(),/:;<=>?@[\\]{}", c) {
			return false
		}
	}
	return textproto.CanonicalMIMEHeaderKey(s) != ""
}

func (g *GatewayResponse) lineOr(fallback int) int {
	if g == nil || g.Line == 0 {
		return fallback
	}
	return g.Line
}

// gatewayResponses checks gateway_responses, hand-written and imported.
func (v *validator) gatewayResponses() {
	known := map[string]bool{}
	var names []string
	for _, t := range gwresponse.Types() {
		if !strings.HasPrefix(string(t), "DRAWBRIDGE_") {
			known[string(t)] = true
			names = append(names, string(t))
		}
	}
	for _, typ := range sortedKeys(v.cfg.GatewayResponses) {
		g := v.cfg.GatewayResponses[typ]
		if g == nil {
			continue
		}
		line := g.lineOr(v.topLine("gateway_responses"))
		obj := "gateway_responses: " + typ
		if !known[typ] {
			v.add(line, "%s: not an API Gateway response type; one of %s", obj, strings.Join(names, ", "))
			continue
		}
		if g.Status != 0 {
			if err := gwresponse.CheckStatus(g.Status); err != nil {
				v.add(v.line(&g.Status, line), "%s: status: %v", obj, err)
			}
		}
		for _, k := range sortedKeys(g.Headers) {
			if err := gwresponse.CheckHeader(k, g.Headers[k]); err != nil {
				v.add(v.line(&g.Headers, line), "%s: headers: %v", obj, err)
			}
		}
	}
}
