package openapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/drawbridge-gw/drawbridge/internal/gwresponse"
	"github.com/drawbridge-gw/drawbridge/internal/integration"
	"github.com/drawbridge-gw/drawbridge/internal/validate"
)

// Options steer an import.
type Options struct {
	// Upstreams maps a VPC link's connectionId, or an integration uri's
	// host[:port], to the name of the drawbridge upstream that serves it.
	Upstreams map[string]string
	// Stage is the stage being imported; a resource policy's statements
	// for other stages then do not apply. "" applies them whatever their
	// stage.
	Stage string
	// StageVariables resolve ${stageVariables.NAME} in uris,
	// connectionIds and request parameters. An unresolved one is an error.
	StageVariables map[string]string
	// SkipUnsupported imports the rest of the definition when some methods
	// cannot run here (aws and aws_proxy integrations, authorizers),
	// listing them in API.Skipped instead of failing.
	SkipUnsupported bool
	// AcceptSkipVerification imports integrations whose tlsConfig sets
	// insecureSkipVerification. drawbridge still verifies those backends
	// (the operator gives their pin or CA): it never skips verification.
	AcceptSkipVerification bool
}

const (
	extPrefix        = "x-amazon-apigateway-"
	extIntegration   = extPrefix + "integration"
	extAnyMethod     = extPrefix + "any-method"
	extValidators    = extPrefix + "request-validators"
	extValidator     = extPrefix + "request-validator"
	extAPIKeySource  = extPrefix + "api-key-source"
	extAuth          = extPrefix + "auth"
	extAuthType      = extPrefix + "authtype"
	extAuthorizer    = extPrefix + "authorizer"
	extBinaryTypes   = extPrefix + "binary-media-types"
	extGatewayResps  = extPrefix + "gateway-responses"
	extPolicy        = extPrefix + "policy"
	extMinCompressed = extPrefix + "minimum-compression-size"
	extDocumentation = extPrefix + "documentation"
	extEndpointConf  = extPrefix + "endpoint-configuration"
	extImportExport  = extPrefix + "importexport-version"
	extAPIKeyName    = "x-api-key"
)

// docExtensions are the API-level extensions import reads, and those it
// knows but leaves out on purpose (each gets its own warning below).
var docExtensions = []string{extValidators, extValidator, extAPIKeySource, extBinaryTypes,
	extGatewayResps, extPolicy, extMinCompressed, extDocumentation, extEndpointConf, extImportExport}

// methodOrder is the order routes of one path are listed in.
var methodOrder = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "ANY"}

// Import loads the definition at path and maps it to routes and upstreams.
// On failure the error is an [*Error] listing every problem found.
func Import(path string, opts Options) (api *API, err error) {
	// kin-openapi walks arbitrary input; a bug there must not take the
	// gateway down at reload.
	defer func() {
		if p := recover(); p != nil {
			api, err = nil, &Error{Problems: []Problem{{File: path, Msg: fmt.Sprintf("internal error reading the definition (please report it): %v", p)}}}
		}
	}()
	l, err := load(path)
	if err != nil {
		return nil, &Error{Problems: []Problem{{File: path, Msg: err.Error()}}}
	}
	im := &importer{file: path, opts: opts, doc: l.doc, loaded: l, api: &API{File: path}, upstreams: map[string]*Upstream{}}
	im.run()
	if len(im.errs) > 0 {
		return nil, &Error{Problems: im.errs}
	}
	for _, u := range im.upstreams {
		im.api.Upstreams = append(im.api.Upstreams, *u)
	}
	sort.Slice(im.api.Upstreams, func(i, j int) bool { return im.api.Upstreams[i].Name < im.api.Upstreams[j].Name })
	return im.api, nil
}

type importer struct {
	file       string
	opts       Options
	doc        *openapi3.T
	loaded     *loaded
	api        *API
	errs       []Problem
	upstreams  map[string]*Upstream // by name
	validators map[string]validator
	// policy is x-amazon-apigateway-policy; nil when there is none.
	policy []parsedStatement
	// policyStage is the stage the policy is evaluated for: Options.Stage,
	// or the one stage the policy names; "" for any.
	policyStage string
}

// loc is where a problem is: a method of a path, with a line if known.
type loc struct {
	line   int
	path   string
	method string
}

func (im *importer) fail(l loc, format string, args ...any) {
	im.errs = append(im.errs, Problem{File: im.file, Line: l.line, Path: l.path, Method: l.method, Msg: fmt.Sprintf(format, args...)})
}

func (im *importer) warn(l loc, format string, args ...any) {
	im.api.Warnings = append(im.api.Warnings, Problem{File: im.file, Line: l.line, Path: l.path, Method: l.method, Msg: fmt.Sprintf(format, args...)})
}

// unsupported fails the import, or with SkipUnsupported records the method
// as skipped.
func (im *importer) unsupported(l loc, format string, args ...any) {
	p := Problem{File: im.file, Line: l.line, Path: l.path, Method: l.method, Msg: fmt.Sprintf(format, args...)}
	if im.opts.SkipUnsupported {
		im.api.Skipped = append(im.api.Skipped, p)
		return
	}
	p.Msg += " (--skip-unsupported, or skip_unsupported: true under apis:, imports the rest)"
	im.errs = append(im.errs, p)
}

type validator struct {
	Body   bool `json:"validateRequestBody"`
	Params bool `json:"validateRequestParameters"`
}

func (im *importer) run() {
	doc := im.doc
	if doc.Info != nil {
		im.api.Title = doc.Info.Title
	}
	top := loc{line: 0}
	im.docExtensions(top)
	if doc.Paths == nil || doc.Paths.Len() == 0 {
		im.fail(top, "the definition has no paths")
		return
	}
	opIDs := map[string]string{}
	for _, path := range slices.Sorted(slices.Values(doc.Paths.Keys())) {
		item := doc.Paths.Value(path)
		if item == nil {
			continue
		}
		if item.Ref != "" && len(item.Operations()) == 0 {
			im.fail(loc{line: originLine(item.Origin), path: path}, "path item $ref %q did not resolve to any operation", item.Ref)
			continue
		}
		ops := item.Operations()
		if raw, ok := item.Extensions[extAnyMethod]; ok {
			op, err := im.anyMethod(raw)
			if err != nil {
				im.fail(loc{line: originLine(item.Origin), path: path, method: "ANY"}, "%s: %v", extAnyMethod, err)
			} else {
				ops["ANY"] = op
			}
		}
		for k := range item.Extensions {
			if strings.HasPrefix(k, extPrefix) && k != extAnyMethod {
				im.warn(loc{line: originLine(item.Origin), path: path}, "%s is not supported here; ignored", k)
			}
		}
		first := len(im.api.Routes)
		for _, method := range methodOrder {
			op := ops[method]
			if op == nil {
				continue
			}
			l := loc{line: originLine(op.Origin), path: path, method: method}
			if l.line == 0 {
				l.line = originLine(item.Origin)
			}
			if op.OperationID != "" {
				where := method + " " + path
				if first, ok := opIDs[op.OperationID]; ok {
					im.fail(l, "operationId %q is also used by %s; operationIds must be unique", op.OperationID, first)
				} else {
					opIDs[op.OperationID] = where
				}
			}
			if r, ok := im.operation(l, item, op); ok {
				rs, ok := im.splitAny(l, r, ops)
				if ok {
					im.api.Routes = append(im.api.Routes, rs...)
				}
			}
		}
		// In method order, an ANY route's split methods included.
		slices.SortStableFunc(im.api.Routes[first:], func(a, b Route) int {
			return slices.Index(methodOrder, a.Method) - slices.Index(methodOrder, b.Method)
		})
		for m := range ops {
			if !slices.Contains(methodOrder, m) {
				im.fail(loc{line: originLine(item.Origin), path: path, method: m}, "method %s is not supported", m)
			}
		}
	}
	if len(im.api.Routes) == 0 && len(im.errs) == 0 {
		im.fail(top, "no method could be imported")
	}
}

func originLine(o *openapi3.Origin) int {
	if o == nil || o.Key == nil {
		return 0
	}
	return o.Key.Line
}

// anyMethod decodes x-amazon-apigateway-any-method, an operation that
// kin-openapi keeps as a raw extension value (load converted it already
// for Swagger 2.0), and resolves its $refs against the definition.
func (im *importer) anyMethod(raw any) (*openapi3.Operation, error) {
	op, ok := raw.(*openapi3.Operation)
	if !ok {
		js, err := json.Marshal(raw)
		if err != nil {
			return nil, err
		}
		op = openapi3.NewOperation()
		if err := op.UnmarshalJSON(js); err != nil {
			return nil, err
		}
	}
	// The loader resolves only real operations: lend it one in a document
	// that shares the definition's components.
	tmp := &openapi3.T{OpenAPI: im.doc.OpenAPI, Info: im.doc.Info, Components: im.doc.Components,
		Paths: openapi3.NewPaths(openapi3.WithPath("/", &openapi3.PathItem{Get: op}))}
	if err := im.loaded.loader.ResolveRefsIn(tmp, im.loaded.location); err != nil {
		return nil, fmt.Errorf("resolving $refs: %w", err)
	}
	return op, nil
}

func (im *importer) docExtensions(top loc) {
	ext := im.doc.Extensions
	for k := range ext {
		if strings.HasPrefix(k, extPrefix) && !slices.Contains(docExtensions, k) {
			im.warn(top, "%s is not supported; ignored", k)
		}
	}
	if raw, ok := ext[extValidators]; ok {
		if err := decodeExt(raw, &im.validators); err != nil {
			im.fail(top, "%s: %v", extValidators, err)
		}
	}
	if raw, ok := ext[extAPIKeySource]; ok {
		var src string
		if err := decodeExt(raw, &src); err != nil {
			im.fail(top, "%s: %v", extAPIKeySource, err)
		} else if !strings.EqualFold(src, "HEADER") {
			im.fail(top, "%s is %q: keys supplied by a Lambda authorizer cannot be checked here; drawbridge reads the x-api-key header (HEADER)", extAPIKeySource, src)
		}
	}
	if raw, ok := ext[extGatewayResps]; ok {
		im.gatewayResponses(top, raw)
	}
	// x-amazon-apigateway-binary-media-types needs no setting: drawbridge
	// passes every body through byte for byte.
	if raw, ok := ext[extPolicy]; ok {
		sts, err := parsePolicy(raw)
		if err != nil {
			im.fail(top, "%s: %v", extPolicy, err)
		} else {
			im.policy = sts
			if im.policy == nil {
				im.policy = []parsedStatement{} // a policy allowing nothing
			}
			if im.policyStage, err = policyStage(sts, im.opts.Stage); err != nil {
				im.fail(top, "%s: %v", extPolicy, err)
				im.policy = nil
			}
		}
	}
}

// gatewayResponses maps x-amazon-apigateway-gateway-responses.
func (im *importer) gatewayResponses(top loc, raw any) {
	var resps map[string]integResp
	if err := decodeExt(raw, &resps); err != nil {
		im.fail(top, "%s: %v", extGatewayResps, err)
		return
	}
	known := map[string]bool{}
	for _, t := range gwresponse.Types() {
		known[string(t)] = !strings.HasPrefix(string(t), "DRAWBRIDGE_")
	}
	for _, typ := range slices.Sorted(mapKeys(resps)) {
		resp := resps[typ]
		if !known[typ] {
			im.fail(top, "%s: %q is not an API Gateway response type", extGatewayResps, typ)
			continue
		}
		gr := GatewayResponse{Status: int(resp.StatusCode), Body: resp.ResponseTemplates["application/json"]}
		if err := gwresponse.CheckStatus(gr.Status); gr.Status != 0 && err != nil {
			im.fail(top, "%s: %s: statusCode %v", extGatewayResps, typ, err)
			continue
		}
		for _, k := range slices.Sorted(mapKeys(resp.ResponseParameters)) {
			v := resp.ResponseParameters[k]
			name, isHeader := strings.CutPrefix(k, "gatewayresponse.header.")
			if sv, isVar := strings.CutPrefix(v, "stageVariables."); isVar {
				if val, found := im.opts.StageVariables[sv]; found {
					v = "'" + val + "'"
				}
			}
			lit, isLit := literal(v)
			if !isHeader || !isLit {
				im.warn(top, "%s: %s: %s = %s: only static 'values' for gatewayresponse.header.* are applied; ignored", extGatewayResps, typ, k, v)
				continue
			}
			if err := gwresponse.CheckHeader(name, lit); err != nil {
				im.fail(top, "%s: %s: %s: %v", extGatewayResps, typ, k, err)
				continue
			}
			if gr.Headers == nil {
				gr.Headers = map[string]string{}
			}
			gr.Headers[name] = lit
		}
		if im.api.GatewayResponses == nil {
			im.api.GatewayResponses = map[string]GatewayResponse{}
		}
		im.api.GatewayResponses[typ] = gr
	}
}

// awsIntegration is x-amazon-apigateway-integration.
type awsIntegration struct {
	Type                string               `json:"type"`
	HTTPMethod          string               `json:"httpMethod"`
	URI                 string               `json:"uri"`
	ConnectionType      string               `json:"connectionType"`
	ConnectionID        string               `json:"connectionId"`
	RequestParameters   map[string]string    `json:"requestParameters"`
	RequestTemplates    map[string]string    `json:"requestTemplates"`
	Responses           map[string]integResp `json:"responses"`
	TimeoutInMillis     *flexInt             `json:"timeoutInMillis"`
	PassthroughBehavior string               `json:"passthroughBehavior"`
	TLSConfig           *struct {
		ServerNameToVerify       string `json:"serverNameToVerify"`
		InsecureSkipVerification bool   `json:"insecureSkipVerification"`
	} `json:"tlsConfig"`
	ContentHandling    string   `json:"contentHandling"`
	Credentials        string   `json:"credentials"`
	CacheKeyParameters []string `json:"cacheKeyParameters"`
	CacheNamespace     string   `json:"cacheNamespace"`
	IntegrationSubtype string   `json:"integrationSubtype"`
}

type integResp struct {
	StatusCode         flexInt           `json:"statusCode"`
	ResponseParameters map[string]string `json:"responseParameters"`
	ResponseTemplates  map[string]string `json:"responseTemplates"`
	ContentHandling    string            `json:"contentHandling"`
}

// flexInt accepts 200 and "200": AWS exports write status codes as strings.
type flexInt int

func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	n, err := strconv.Atoi(s)
	if err != nil {
		return &json.UnmarshalTypeError{Value: string(b), Type: reflect.TypeFor[int]()}
	}
	*f = flexInt(n)
	return nil
}

// decodeExt decodes an extension's raw value into out, strictly.
func decodeExt(raw any, out any) error {
	js, err := json.Marshal(raw)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(strings.NewReader(string(js)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			if te.Field == "" {
				return fmt.Errorf("want %s, got %s", jsonKind(te.Type), te.Value)
			}
			return fmt.Errorf("%s: want %s, got %s", te.Field, jsonKind(te.Type), te.Value)
		}
		return fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

// jsonKind says what a Go type is in JSON words, for messages.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "a mapping"
	case reflect.Slice:
		return "a list"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64:
		return "a whole number"
	case reflect.String:
		return "a string"
	}
	return t.String()
}

func (im *importer) operation(l loc, item *openapi3.PathItem, op *openapi3.Operation) (Route, bool) {
	r := Route{Method: l.method, Path: l.path}
	for k := range op.Extensions {
		if strings.HasPrefix(k, extPrefix) && k != extIntegration && k != extValidator && k != extAuth {
			im.warn(l, "%s is not supported; ignored", k)
		}
	}
	raw, ok := op.Extensions[extIntegration]
	if !ok {
		im.fail(l, "no %s: drawbridge needs it to know the backend (export with the integrations extensions: aws apigateway get-export --parameters extensions='integrations')", extIntegration)
		return r, false
	}
	var in awsIntegration
	if err := decodeExt(raw, &in); err != nil {
		im.fail(l, "%s: %v", extIntegration, err)
		return r, false
	}
	if raw, ok := op.Extensions[extAuth]; ok {
		var auth struct {
			Type string `json:"type"`
		}
		if err := decodeExt(raw, &auth); err != nil {
			im.fail(l, "%s: %v", extAuth, err)
			return r, false
		}
		if !strings.EqualFold(auth.Type, "NONE") {
			im.unsupported(l, "%s type %s (IAM signatures) cannot be checked here", extAuth, auth.Type)
			return r, false
		}
	}
	keyRequired, ok := im.security(l, op)
	if !ok {
		return r, false
	}
	r.APIKeyRequired = keyRequired

	switch strings.ToLower(in.Type) {
	case "aws", "aws_proxy":
		im.unsupported(l, "integration type %s (Lambda or another AWS service) cannot run outside AWS; point the method at an HTTP backend", in.Type)
		return r, false
	case "mock":
		m, ok := im.mock(l, in)
		if !ok {
			return r, false
		}
		r.Mock = m
	case "http", "http_proxy":
		if !im.httpIntegration(l, in, &r) {
			return r, false
		}
	case "":
		im.fail(l, "%s has no type; want http, http_proxy or mock", extIntegration)
		return r, false
	default:
		im.fail(l, "%s type %q is not known; want http, http_proxy or mock", extIntegration, in.Type)
		return r, false
	}
	if in.TimeoutInMillis != nil {
		if *in.TimeoutInMillis <= 0 {
			im.fail(l, "timeoutInMillis must be greater than 0, got %d", *in.TimeoutInMillis)
			return r, false
		}
		r.Timeout = time.Duration(*in.TimeoutInMillis) * time.Millisecond
	}
	r.Passthrough = in.PassthroughBehavior
	if in.ContentHandling != "" {
		im.warn(l, "contentHandling %s is not applied; bodies pass through unchanged", in.ContentHandling)
	}
	if in.Credentials != "" {
		im.warn(l, "credentials (an IAM role for AWS to assume) has no meaning here; ignored")
	}
	v, ok := im.validate(l, item, op)
	if !ok {
		return r, false
	}
	r.Validate = v
	if im.policy != nil {
		ip, err := routeIPRules(im.policy, im.policyStage, r.Method, r.Path)
		if err != nil {
			im.fail(l, "%s: %v", extPolicy, err)
			return r, false
		}
		r.IP = ip
	}
	return r, true
}

// splitAny returns an ANY route as routes of its own methods when the
// resource policy treats its methods differently (an Allow on
// prod/GET/*): ip rules apply to a whole route, and one ANY route would
// have to deny every method. Methods the path declares itself are left
// to their own routes, as API Gateway prefers them over ANY.
func (im *importer) splitAny(l loc, r Route, ops map[string]*openapi3.Operation) ([]Route, bool) {
	if r.Method != "ANY" || im.policy == nil {
		return []Route{r}, true
	}
	rules := make([]*IPRules, len(anyMethods))
	same := true
	for i, m := range anyMethods {
		ip, err := routeIPRules(im.policy, im.policyStage, m, r.Path)
		if err != nil {
			im.fail(l, "%s: %v", extPolicy, err)
			return nil, false
		}
		rules[i] = ip
		same = same && sameRules(ip, rules[0])
	}
	if same {
		r.IP = rules[0]
		return []Route{r}, true
	}
	var out []Route
	for i, m := range anyMethods {
		if ops[m] != nil {
			continue
		}
		one := r
		one.Method, one.IP = m, rules[i]
		out = append(out, one)
	}
	return out, true
}

// security reports whether op requires an API key. Authorizers and IAM
// are unsupported: dropping them would open the method to anyone.
func (im *importer) security(l loc, op *openapi3.Operation) (keyRequired, ok bool) {
	reqs := im.doc.Security
	if op.Security != nil {
		reqs = *op.Security
	}
	var schemes openapi3.SecuritySchemes
	if im.doc.Components != nil {
		schemes = im.doc.Components.SecuritySchemes
	}
	for _, req := range reqs {
		for name := range req {
			ref := schemes[name]
			if ref == nil || ref.Value == nil {
				im.fail(l, "security scheme %q is not defined under components.securitySchemes", name)
				return false, false
			}
			s := ref.Value
			_, hasAuthType := s.Extensions[extAuthType]
			_, hasAuthorizer := s.Extensions[extAuthorizer]
			switch {
			case hasAuthType || hasAuthorizer:
				im.unsupported(l, "security scheme %q is an API Gateway authorizer (Lambda, Cognito or IAM), which cannot run here", name)
				return false, false
			case s.Type == "apiKey" && strings.EqualFold(s.Name, extAPIKeyName) && s.In == "header":
				keyRequired = true
			default:
				im.unsupported(l, "security scheme %q (type %s) is not supported; only an apiKey in header x-api-key is", name, s.Type)
				return false, false
			}
		}
	}
	return keyRequired, true
}

var statusTemplate = regexp.MustCompile(`"statusCode"\s*:\s*"?(\d{3})`)

// mock maps a mock integration: the request template picks the status,
// which selects an integration response by its selection pattern (or
// "default"); that response gives the status, headers and body.
func (im *importer) mock(l loc, in awsIntegration) (*Mock, bool) {
	status := 200
	if tmpl, ok := in.RequestTemplates["application/json"]; ok {
		if m := statusTemplate.FindStringSubmatch(tmpl); m != nil {
			status, _ = strconv.Atoi(m[1])
		} else if strings.TrimSpace(tmpl) != "" {
			im.warn(l, "mock requestTemplates application/json has no {\"statusCode\": N}; answering %d", status)
		}
	}
	code := strconv.Itoa(status)
	var chosen *integResp
	for _, pattern := range slices.Sorted(mapKeys(in.Responses)) {
		if pattern == "default" {
			continue
		}
		re, err := regexp.Compile("^(?:" + pattern + ")$")
		if err != nil {
			im.fail(l, "mock responses: selection pattern %q: %v", pattern, err)
			return nil, false
		}
		if re.MatchString(code) {
			resp := in.Responses[pattern]
			chosen = &resp
			break
		}
	}
	if chosen == nil {
		if resp, ok := in.Responses["default"]; ok {
			chosen = &resp
		}
	}
	m := &Mock{Status: status}
	if chosen == nil {
		if len(in.Responses) > 0 {
			im.fail(l, "mock answers status %d but no integration response matches it (add a \"default\" response)", status)
			return nil, false
		}
		return m, true
	}
	if chosen.StatusCode != 0 {
		m.Status = int(chosen.StatusCode)
	}
	if err := gwresponse.CheckStatus(m.Status); err != nil {
		im.fail(l, "mock status: %v", err)
		return nil, false
	}
	if body, ok := chosen.ResponseTemplates["application/json"]; ok {
		m.Body = body
		if strings.ContainsAny(body, "$#") {
			im.warn(l, "mock responseTemplates application/json looks like a VTL template; it is sent as written, not evaluated")
		}
	}
	for _, k := range slices.Sorted(mapKeys(chosen.ResponseParameters)) {
		v := chosen.ResponseParameters[k]
		name, ok := strings.CutPrefix(k, "method.response.header.")
		lit, isLit := literal(v)
		if !ok || !isLit {
			im.warn(l, "mock responseParameters %s = %s: only static 'values' for method.response.header.* are applied; ignored", k, v)
			continue
		}
		if err := gwresponse.CheckHeader(name, lit); err != nil {
			im.fail(l, "mock responseParameters %s: %v", k, err)
			return nil, false
		}
		if m.Headers == nil {
			m.Headers = map[string]string{}
		}
		m.Headers[name] = lit
	}
	return m, true
}

// literal unquotes an AWS static value, written 'value'.
func literal(v string) (string, bool) {
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		return v[1 : len(v)-1], true
	}
	return "", false
}

var stageVarRef = regexp.MustCompile(`\$\{stageVariables\.([A-Za-z0-9_]+)\}`)

// stageVars replaces ${stageVariables.NAME}; a variable not given is an
// error naming it.
func (im *importer) stageVars(l loc, field, s string) (string, bool) {
	ok := true
	out := stageVarRef.ReplaceAllStringFunc(s, func(ref string) string {
		name := stageVarRef.FindStringSubmatch(ref)[1]
		v, found := im.opts.StageVariables[name]
		if !found {
			im.fail(l, "%s uses stage variable %q, which is not set; give it (--stage-var %s=VALUE, or stage_variables in config)", field, name, name)
			ok = false
		}
		return v
	})
	return out, ok
}

var pathParam = regexp.MustCompile(`\{([^{}]+)\}`)

func (im *importer) httpIntegration(l loc, in awsIntegration, r *Route) bool {
	uri, ok := im.stageVars(l, "uri", in.URI)
	if !ok {
		return false
	}
	if uri == "" {
		im.fail(l, "%s type %s has no uri", extIntegration, in.Type)
		return false
	}
	scheme, rest, found := strings.Cut(uri, "://")
	scheme = strings.ToLower(scheme)
	if !found || (scheme != "https" && scheme != "http") {
		im.fail(l, "uri %q: want https://host[:port]/path", in.URI)
		return false
	}
	hostport, path := rest, "/"
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		hostport, path = rest[:i], rest[i:]
	}
	if strings.ContainsAny(hostport, "?#") || strings.ContainsAny(path, "?#") {
		im.fail(l, "uri %q has a query string; map query parameters with requestParameters instead", in.URI)
		return false
	}
	hostport = strings.ToLower(hostport)
	if hostport == "" {
		im.fail(l, "uri %q has no host", in.URI)
		return false
	}
	port := "443"
	if scheme == "http" {
		port = "80"
	}
	host := hostport
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		host, port = h, p
	}

	// The upstream path: each {name} of the uri is filled from the
	// integration.request.path.name mapping.
	routeParams := routeParamNames(r.Path)
	var perr bool
	upPath := pathParam.ReplaceAllStringFunc(path, func(ref string) string {
		name := strings.TrimSuffix(ref[1:len(ref)-1], "+")
		src, mapped := in.RequestParameters["integration.request.path."+name]
		if !mapped {
			// http_proxy exports always map; be lenient when the names match.
			if _, ok := routeParams[name]; ok {
				src = "method.request.path." + name
			} else {
				im.fail(l, "uri %q has {%s}, but requestParameters has no integration.request.path.%s", in.URI, name, name)
				perr = true
				return ref
			}
		}
		src, _ = im.stageVars(l, "requestParameters", src)
		if lit, ok := literal(src); ok {
			return url.PathEscape(lit)
		}
		m, ok := strings.CutPrefix(src, "method.request.path.")
		greedy, exists := routeParams[m]
		if !ok || !exists {
			im.fail(l, "integration.request.path.%s = %s: want method.request.path.NAME of this path's parameters, or a 'literal'", name, src)
			perr = true
			return ref
		}
		if greedy {
			return "{" + m + "+}"
		}
		return "{" + m + "}"
	})
	if perr {
		return false
	}
	r.UpstreamPath = upPath

	for _, k := range slices.Sorted(mapKeys(in.RequestParameters)) {
		src := in.RequestParameters[k]
		if strings.HasPrefix(k, "integration.request.path.") {
			continue
		}
		target, ok := strings.CutPrefix(k, "integration.request.")
		kind, name, _ := strings.Cut(target, ".")
		if !ok || (kind != "header" && kind != "querystring") || name == "" {
			im.fail(l, "requestParameters key %q: want integration.request.header.NAME, integration.request.querystring.NAME or integration.request.path.NAME", k)
			return false
		}
		// A stage variable is a static value once resolved: as a source
		// (stageVariables.NAME), alone (${stageVariables.NAME}) or inside
		// a 'literal'.
		resolved := src
		if name, isVar := strings.CutPrefix(src, "stageVariables."); isVar {
			v, found := im.opts.StageVariables[name]
			if !found {
				im.fail(l, "requestParameters %s uses stage variable %q, which is not set; give it (--stage-var %s=VALUE, or stage_variables in config)", k, name, name)
				return false
			}
			resolved = "'" + v + "'"
		} else if stageVarRef.MatchString(src) {
			if resolved, ok = im.stageVars(l, "requestParameters "+k, src); !ok {
				return false
			}
			if _, isLit := literal(resolved); !isLit {
				resolved = "'" + resolved + "'"
			}
		}
		if _, isLit := literal(resolved); !isLit && !integration.ValidSource(resolved) {
			// Refused, not skipped: API Gateway sets the target itself,
			// so the backend may trust it; skipping the mapping would let
			// the partner's own header of that name through instead.
			im.fail(l, "requestParameters %s = %s: only method.request.{header,querystring,path}.NAME, context.requestId, context.identity.sourceIp and 'literal' sources are supported; drop the mapping, or set the header in the backend", k, src)
			return false
		}
		if r.RequestParameters == nil {
			r.RequestParameters = map[string]string{}
		}
		r.RequestParameters[k] = resolved
	}

	if _, errs := integration.ParseParameters(r.RequestParameters); len(errs) > 0 {
		for _, e := range errs {
			im.fail(l, "%s", strings.Replace(e, "request_parameters", "requestParameters", 1))
		}
		return false
	}

	method := strings.ToUpper(in.HTTPMethod)
	switch {
	case method == "":
		im.fail(l, "%s type %s has no httpMethod", extIntegration, in.Type)
		return false
	case method == "ANY" || method == r.Method:
	case !slices.Contains(methodOrder, method):
		im.fail(l, "httpMethod %q is not an HTTP method", in.HTTPMethod)
		return false
	default:
		r.UpstreamMethod = method
	}

	if strings.ToLower(in.Type) == "http" {
		if len(in.RequestTemplates) > 0 {
			im.warn(l, "requestTemplates (mapping templates) are not applied; the body passes through unchanged (passthroughBehavior %s)", orNone(in.PassthroughBehavior))
		}
		for _, pattern := range slices.Sorted(mapKeys(in.Responses)) {
			resp := in.Responses[pattern]
			if resp.StatusCode == 0 {
				continue
			}
			if r.StatusMap == nil {
				r.StatusMap = map[string]int{}
			}
			r.StatusMap[pattern] = int(resp.StatusCode)
			if len(resp.ResponseTemplates) > 0 || len(resp.ResponseParameters) > 0 {
				im.warn(l, "integration response %q: responseTemplates and responseParameters are not applied; the backend's headers and body pass through", pattern)
			}
		}
		if _, errs := integration.StatusMap(r.StatusMap); len(errs) > 0 {
			im.fail(l, "integration responses: %s", strings.Join(errs, "; "))
			return false
		}
	}

	key := hostport
	connType := strings.ToUpper(in.ConnectionType)
	switch connType {
	case "", "INTERNET":
	case "VPC_LINK":
		id, ok := im.stageVars(l, "connectionId", in.ConnectionID)
		if !ok {
			return false
		}
		if id == "" {
			im.fail(l, "connectionType VPC_LINK without a connectionId")
			return false
		}
		if hasControlOrSpace(id) {
			im.fail(l, "connectionId %q has spaces or control characters", id)
			return false
		}
		key = id
	default:
		im.fail(l, "connectionType %q: want INTERNET or VPC_LINK", in.ConnectionType)
		return false
	}
	name, mapped := im.opts.Upstreams[key]
	if !mapped && connType == "VPC_LINK" {
		if n, ok := im.opts.Upstreams[hostport]; ok {
			name, mapped = n, true
		}
	}
	if !mapped {
		name = key
	}
	u := im.upstreams[name]
	if u == nil {
		u = &Upstream{Name: name, Key: key, Target: scheme + "://" + net.JoinHostPort(host, port), VPCLink: connType == "VPC_LINK", Mapped: mapped}
		im.upstreams[name] = u
	}
	if in.TLSConfig != nil {
		if in.TLSConfig.InsecureSkipVerification && !im.opts.AcceptSkipVerification {
			im.fail(l, "tlsConfig.insecureSkipVerification is true: API Gateway then trusts any certificate the backend shows. drawbridge always verifies, so this backend needs its pin or CA: get the pin with `drawbridge pin %s`, and import again accepting this (--accept-skip-verification, or accept_skip_verification: true)", u.Target)
			return false
		}
		if sn := in.TLSConfig.ServerNameToVerify; hasControlOrSpace(sn) {
			im.fail(l, "tlsConfig.serverNameToVerify %q has spaces or control characters; want a host name", sn)
			return false
		} else if sn != "" {
			if u.ServerName != "" && u.ServerName != sn {
				im.fail(l, "tlsConfig.serverNameToVerify %q differs from %q set by another method of upstream %q", sn, u.ServerName, name)
				return false
			}
			u.ServerName = sn
		}
	}
	r.Upstream = name
	return true
}

// hasControlOrSpace reports whether s, a name that ends up in generated
// config and its comments, holds anything but visible characters.
func hasControlOrSpace(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsControl(r) || unicode.IsSpace(r)
	})
}

func orNone(s string) string {
	if s == "" {
		return "not set"
	}
	return s
}

// routeParamNames maps each {param} of an API Gateway path to whether it
// is greedy ({proxy+}).
func routeParamNames(path string) map[string]bool {
	out := map[string]bool{}
	for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
		name, greedy := strings.CutSuffix(m[1], "+")
		out[name] = greedy
	}
	return out
}

// validate maps the request validator that applies to op.
func (im *importer) validate(l loc, item *openapi3.PathItem, op *openapi3.Operation) (*Validate, bool) {
	name := ""
	if raw, ok := im.doc.Extensions[extValidator]; ok {
		if err := decodeExt(raw, &name); err != nil {
			im.fail(loc{}, "%s: %v", extValidator, err)
			return nil, false
		}
	}
	if raw, ok := op.Extensions[extValidator]; ok {
		if err := decodeExt(raw, &name); err != nil {
			im.fail(l, "%s: %v", extValidator, err)
			return nil, false
		}
	}
	if name == "" {
		return nil, true
	}
	val, ok := im.validators[name]
	if !ok {
		im.fail(l, "request validator %q is not defined in %s (defined: %s)", name, extValidators, strings.Join(slices.Sorted(mapKeys(im.validators)), ", "))
		return nil, false
	}
	if !val.Body && !val.Params {
		return nil, true
	}
	v := &Validate{}
	if val.Params {
		seen := map[string]bool{}
		params := append(slices.Clone(op.Parameters), item.Parameters...) // the operation's win
		for _, p := range params {
			if p == nil || p.Value == nil {
				continue
			}
			pv := p.Value
			id := pv.In + " " + pv.Name
			if seen[id] {
				continue
			}
			seen[id] = true
			if !pv.Required {
				continue
			}
			switch pv.In {
			case "header":
				v.RequiredHeaders = append(v.RequiredHeaders, pv.Name)
			case "query":
				v.RequiredQuery = append(v.RequiredQuery, pv.Name)
			}
		}
	}
	if val.Body && op.RequestBody != nil && op.RequestBody.Value != nil {
		mt := op.RequestBody.Value.Content.Get("application/json")
		switch {
		case mt != nil && mt.Schema != nil:
			js, err := inlineSchemaJSON(mt.Schema, im.doc.IsOpenAPI31OrLater())
			if err != nil {
				im.fail(l, "request body model: %v", err)
				return nil, false
			}
			// Checked as the gateway will compile it, so that a model it
			// would refuse fails here, naming the method.
			if _, err := validate.CompileSchema(js); err != nil {
				im.fail(l, "request body model is not a valid schema: %v", err)
				return nil, false
			}
			v.BodySchema = js
		case len(op.RequestBody.Value.Content) > 0:
			im.warn(l, "validateRequestBody: only application/json models are checked; this method has %s", strings.Join(slices.Sorted(mapKeys(op.RequestBody.Value.Content)), ", "))
		}
	}
	if len(v.RequiredHeaders) == 0 && len(v.RequiredQuery) == 0 && v.BodySchema == "" {
		return nil, true
	}
	return v, true
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
