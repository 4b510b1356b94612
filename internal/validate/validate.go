package validate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/drawbridge-gw/drawbridge/internal/gwresponse"
	"github.com/drawbridge-gw/drawbridge/internal/observe"
)

// Options is one route's validator.
type Options struct {
	// RequiredHeaders and RequiredQuery must be present and non-empty.
	RequiredHeaders []string
	RequiredQuery   []string
	// BodySchema is a JSON Schema, as JSON text, that an application/json
	// body (or one without a Content-Type) must match; an empty body is
	// checked as null, except on a GET, HEAD, OPTIONS or DELETE without
	// one. "" checks no body.
	BodySchema string
	// MaxBodyBytes caps how much body is read to validate it; a larger
	// body gets 413, as the proxy would answer. It must be > 0 when
	// BodySchema is set.
	MaxBodyBytes int64
}

// Dialect2020 is the $schema of a JSON Schema 2020-12 model, as OpenAPI
// 3.1 writes them. A body_schema without it is read as OpenAPI 3.0's
// JSON Schema (draft 4 based, as API Gateway's models).
const Dialect2020 = "https://json-schema.org/draft/2020-12/schema"

// Schema is a compiled body_schema.
type Schema struct {
	// schema is an OpenAPI 3.0 schema, checked by kin-openapi.
	schema *openapi3.Schema
	// js is a JSON Schema 2020-12 model, compiled once: kin-openapi's
	// 2020-12 support builds a new compiler on every check, which costs
	// ~100 times the check itself.
	js *jsonschema.Schema
}

// Check reports whether v, a decoded JSON value, matches the schema.
func (s *Schema) Check(v any) error {
	if s.js != nil {
		return s.js.Validate(v)
	}
	return s.schema.VisitJSON(v)
}

// noRefLoader refuses every external $ref of a 2020-12 model: a
// body_schema is self-contained (the import inlines $refs), and the
// gateway must not read files or URLs a schema names.
type noRefLoader struct{}

func (noRefLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("$ref %q: a body_schema must be self-contained", url)
}

// bodySchemaURL names the schema being compiled, for its own #refs.
const bodySchemaURL = "drawbridge:body_schema.json"

func compile2020(text string) (*Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(text))
	if err != nil {
		return nil, fmt.Errorf("body_schema is not a JSON Schema: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(noRefLoader{})
	if err := c.AddResource(bodySchemaURL, doc); err != nil {
		return nil, fmt.Errorf("body_schema: %w", err)
	}
	js, err := c.Compile(bodySchemaURL)
	if err != nil {
		return nil, fmt.Errorf("body_schema: %w", err)
	}
	return &Schema{js: js}, nil
}

// CompileSchema parses a JSON Schema written as JSON text, as a route's
// body_schema. The config loader calls it to report a bad schema at its
// line; New calls it again to build.
func CompileSchema(text string) (*Schema, error) {
	var s openapi3.Schema
	dec := json.NewDecoder(strings.NewReader(text))
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("body_schema is not a JSON Schema: %w", err)
	}
	if dec.More() {
		return nil, errors.New("body_schema has data after the schema")
	}
	if s.SchemaDialect == Dialect2020 {
		return compile2020(text)
	}
	if err := s.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("body_schema: %w", err)
	}
	return &Schema{schema: &s}, nil
}

// New returns next behind the checks in opts, or next itself when opts
// checks nothing.
func New(opts Options, next http.Handler) (http.Handler, error) {
	v := &validator{opts: opts, next: next}
	if opts.BodySchema != "" {
		if opts.MaxBodyBytes <= 0 {
			return nil, errors.New("validate: MaxBodyBytes must be set to check bodies")
		}
		s, err := CompileSchema(opts.BodySchema)
		if err != nil {
			return nil, err
		}
		v.schema = s
	}
	if v.schema == nil && len(opts.RequiredHeaders) == 0 && len(opts.RequiredQuery) == 0 {
		return next, nil
	}
	return v, nil
}

type validator struct {
	opts   Options
	schema *Schema
	next   http.Handler
}

func (v *validator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Parameters first, as API Gateway does; its message lists header
	// names, then query string names.
	var missing []string
	for _, h := range v.opts.RequiredHeaders {
		if strings.TrimSpace(r.Header.Get(h)) == "" {
			missing = append(missing, h)
		}
	}
	if len(v.opts.RequiredQuery) > 0 {
		q := r.URL.Query()
		for _, name := range v.opts.RequiredQuery {
			if q.Get(name) == "" {
				missing = append(missing, name)
			}
		}
	}
	if len(missing) > 0 {
		observe.RecordFrom(r.Context()).Error = "missing required request parameters"
		gwresponse.WriteMessage(w, gwresponse.BadRequestParameters, "Missing required request parameters: ["+strings.Join(missing, ", ")+"]")
		return
	}
	if v.schema != nil && len(r.Header.Values("Content-Type")) > 1 {
		// Which one the backend reads is its choice, not ours: a body
		// checked as one type could be read as another.
		observe.RecordFrom(r.Context()).Error = "several Content-Type headers"
		gwresponse.Write(w, gwresponse.BadRequestBody)
		return
	}
	if v.schema != nil && isJSON(r.Header.Get("Content-Type")) && !bodiless(r) {
		body, ok := v.readBody(w, r)
		if !ok {
			return
		}
		if !v.validBody(body) {
			observe.RecordFrom(r.Context()).Error = "invalid request body"
			gwresponse.Write(w, gwresponse.BadRequestBody)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
	}
	v.next.ServeHTTP(w, r)
}

// readBody reads the whole body, up to MaxBodyBytes; past that it answers
// 413 as the proxy does.
func (v *validator) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if r.ContentLength > v.opts.MaxBodyBytes {
		observe.RecordFrom(r.Context()).Error = "request body too large"
		gwresponse.Write(w, gwresponse.RequestTooLarge)
		return nil, false
	}
	if r.Body == nil || r.Body == http.NoBody {
		return nil, true
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, v.opts.MaxBodyBytes+1))
	switch {
	case err != nil:
		// The partner hung up or sent a broken chunked body.
		observe.RecordFrom(r.Context()).Error = "reading request body: " + err.Error()
		gwresponse.Write(w, gwresponse.BadRequestBody)
		return nil, false
	case int64(len(body)) > v.opts.MaxBodyBytes:
		observe.RecordFrom(r.Context()).Error = "request body too large"
		gwresponse.Write(w, gwresponse.RequestTooLarge)
		return nil, false
	}
	return body, true
}

func (v *validator) validBody(body []byte) bool {
	var doc any
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&doc); err != nil {
		// An empty body is validated as no value at all, which only a
		// schema accepting null would pass.
		if !errors.Is(err, io.EOF) {
			return false
		}
		doc = nil
	}
	if dec.More() {
		return false
	}
	return v.schema.Check(doc) == nil
}

// bodiless reports a GET, HEAD, OPTIONS or DELETE sent without a body: an
// ANY method's model applies to the methods that carry one.
func bodiless(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodDelete:
		return r.ContentLength == 0
	}
	return false
}

// isJSON reports whether a body of this Content-Type is checked against
// the model: API Gateway takes a request without one as application/json.
// It errs towards checking: a value the parser refuses is judged by its
// media type before any ';', and a list ("application/json, text/plain")
// is checked when any of its types is JSON, since a backend may read the
// body as JSON on a type the gateway would not.
func isJSON(contentType string) bool {
	if strings.TrimSpace(contentType) == "" {
		return true
	}
	for part := range strings.SplitSeq(contentType, ",") {
		mt, _, err := mime.ParseMediaType(part)
		if err != nil {
			mt, _, _ = strings.Cut(part, ";")
			mt = strings.ToLower(strings.TrimSpace(mt))
		}
		if mt == "application/json" {
			return true
		}
	}
	return false
}
