package openapi

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Export writes api as an OpenAPI 3.0 definition in YAML with the
// x-amazon-apigateway-* extensions Import reads, so that importing the
// result gives api's routes and upstreams back (Options.Upstreams aside:
// upstreams are written under their keys).
func Export(api *API) ([]byte, error) {
	ups := map[string]Upstream{}
	for _, u := range api.Upstreams {
		ups[u.Name] = u
	}
	title := api.Title
	if title == "" {
		title = "drawbridge"
	}
	paths := map[string]map[string]any{}
	needKey := false
	validators := map[string]bool{}
	for _, r := range api.Routes {
		op, err := exportOperation(r, ups)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", r.Method, r.Path, err)
		}
		if r.APIKeyRequired {
			op["security"] = []any{map[string]any{"api_key": []any{}}}
			needKey = true
		}
		if name := validatorName(r.Validate); name != "" {
			op[extValidator] = name
			validators[name] = true
		}
		item := paths[r.Path]
		if item == nil {
			item = map[string]any{}
			paths[r.Path] = item
		}
		key := strings.ToLower(r.Method)
		if r.Method == "ANY" {
			key = extAnyMethod
		}
		if _, dup := item[key]; dup {
			return nil, fmt.Errorf("%s %s: declared twice", r.Method, r.Path)
		}
		item[key] = op
	}
	doc := map[string]any{
		"openapi":       "3.0.3",
		"info":          map[string]any{"title": title, "version": "1"},
		"paths":         paths,
		extAPIKeySource: "HEADER",
	}
	if len(api.GatewayResponses) > 0 {
		resps := map[string]any{}
		for typ, gr := range api.GatewayResponses {
			r := map[string]any{}
			if gr.Status != 0 {
				r["statusCode"] = strconv.Itoa(gr.Status)
			}
			if gr.Body != "" {
				r["responseTemplates"] = map[string]any{"application/json": gr.Body}
			}
			if len(gr.Headers) > 0 {
				hp := map[string]any{}
				for k, v := range gr.Headers {
					hp["gatewayresponse.header."+k] = "'" + v + "'"
				}
				r["responseParameters"] = hp
			}
			resps[typ] = r
		}
		doc[extGatewayResps] = resps
	}
	policy, err := exportPolicy(api.Routes)
	if err != nil {
		return nil, err
	}
	if policy != nil {
		doc[extPolicy] = policy
	}
	if len(validators) > 0 {
		defs := map[string]any{}
		for name := range validators {
			defs[name] = map[string]any{
				"validateRequestBody":       name != "params-only",
				"validateRequestParameters": name != "body-only",
			}
		}
		doc[extValidators] = defs
	}
	if needKey {
		doc["components"] = map[string]any{"securitySchemes": map[string]any{
			"api_key": map[string]any{"type": "apiKey", "name": extAPIKeyName, "in": "header"},
		}}
	}
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("encoding YAML: %w", err)
	}
	enc.Close()
	return []byte(b.String()), nil
}

func validatorName(v *Validate) string {
	switch {
	case v == nil:
		return ""
	case v.BodySchema == "":
		return "params-only"
	case len(v.RequiredHeaders) == 0 && len(v.RequiredQuery) == 0:
		return "body-only"
	}
	return "all"
}

func exportOperation(r Route, ups map[string]Upstream) (map[string]any, error) {
	op := map[string]any{"responses": map[string]any{"default": map[string]any{"description": "as the backend answers"}}}
	var params []any
	for name := range routeParamNames(r.Path) {
		params = append(params, map[string]any{"name": name, "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
	}
	sort.Slice(params, func(i, j int) bool {
		return params[i].(map[string]any)["name"].(string) < params[j].(map[string]any)["name"].(string)
	})
	if v := r.Validate; v != nil {
		for _, h := range v.RequiredHeaders {
			params = append(params, map[string]any{"name": h, "in": "header", "required": true, "schema": map[string]any{"type": "string"}})
		}
		for _, q := range v.RequiredQuery {
			params = append(params, map[string]any{"name": q, "in": "query", "required": true, "schema": map[string]any{"type": "string"}})
		}
		if v.BodySchema != "" {
			var schema any
			if err := json.Unmarshal([]byte(v.BodySchema), &schema); err != nil {
				return nil, fmt.Errorf("body schema: %w", err)
			}
			op["requestBody"] = map[string]any{"content": map[string]any{"application/json": map[string]any{"schema": schema}}}
		}
	}
	if len(params) > 0 {
		op["parameters"] = params
	}
	if m := r.Mock; m != nil {
		resp := map[string]any{"statusCode": strconv.Itoa(m.Status)}
		if m.Body != "" {
			resp["responseTemplates"] = map[string]any{"application/json": m.Body}
		}
		if len(m.Headers) > 0 {
			hp := map[string]any{}
			for k, v := range m.Headers {
				hp["method.response.header."+k] = "'" + v + "'"
			}
			resp["responseParameters"] = hp
		}
		in := map[string]any{
			"type":             "mock",
			"requestTemplates": map[string]any{"application/json": fmt.Sprintf(`{"statusCode": %d}`, m.Status)},
			"responses":        map[string]any{"default": resp},
		}
		if r.Passthrough != "" {
			in["passthroughBehavior"] = r.Passthrough
		}
		op[extIntegration] = in
		return op, nil
	}
	u, ok := ups[r.Upstream]
	if !ok {
		return nil, fmt.Errorf("upstream %q is not in the API's upstreams", r.Upstream)
	}
	in := map[string]any{"type": "http_proxy"}
	if len(r.StatusMap) > 0 {
		// Only an http integration's responses map the status.
		in["type"] = "http"
		resps := map[string]any{}
		for pattern, status := range r.StatusMap {
			resps[pattern] = map[string]any{"statusCode": strconv.Itoa(status)}
		}
		in["responses"] = resps
	}
	method := r.UpstreamMethod
	if method == "" {
		method = r.Method
	}
	in["httpMethod"] = method
	scheme, hostport, _ := strings.Cut(u.Target, "://")
	if !u.VPCLink {
		hostport = u.Key
	} else {
		in["connectionType"] = "VPC_LINK"
		in["connectionId"] = u.Key
	}
	reqParams := map[string]any{}
	// Each {param} of the upstream path becomes a uri parameter mapped
	// from the method's own.
	uriPath := pathParam.ReplaceAllStringFunc(r.UpstreamPath, func(ref string) string {
		name := strings.TrimSuffix(ref[1:len(ref)-1], "+")
		reqParams["integration.request.path."+name] = "method.request.path." + name
		return "{" + name + "}"
	})
	if uriPath == "" {
		uriPath = r.Path
		for name := range routeParamNames(r.Path) {
			reqParams["integration.request.path."+name] = "method.request.path." + name
		}
		uriPath = strings.ReplaceAll(uriPath, "+}", "}")
	}
	in["uri"] = scheme + "://" + hostport + uriPath
	for k, v := range r.RequestParameters {
		reqParams[k] = v
	}
	if len(reqParams) > 0 {
		in["requestParameters"] = reqParams
	}
	if r.Timeout > 0 {
		in["timeoutInMillis"] = r.Timeout.Milliseconds()
	}
	if r.Passthrough != "" {
		in["passthroughBehavior"] = r.Passthrough
	}
	if u.ServerName != "" {
		in["tlsConfig"] = map[string]any{"serverNameToVerify": u.ServerName}
	}
	op[extIntegration] = in
	return op, nil
}
