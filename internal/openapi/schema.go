package openapi

import (
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/drawbridge-gw/drawbridge/internal/validate"
)

var (
	schemaRefType  = reflect.TypeFor[*openapi3.SchemaRef]()
	schemaRefsType = reflect.TypeFor[openapi3.SchemaRefs]()
	schemasType    = reflect.TypeFor[openapi3.Schemas]()
	boolSchemaType = reflect.TypeFor[openapi3.BoolSchema]()
)

// inlineSchemaJSON returns ref's resolved schema as one self-contained JSON
// document: every $ref replaced by the schema it names, so the gateway can
// compile it without the definition. A schema that refers to itself
// (a tree, a linked list) cannot be inlined and is reported.
//
// dialect2020 marks the result as JSON Schema 2020-12 (OpenAPI 3.1's), so
// that it is validated as such.
func inlineSchemaJSON(ref *openapi3.SchemaRef, dialect2020 bool) (string, error) {
	in, err := inline(ref, map[*openapi3.Schema]bool{}, 0)
	if err != nil {
		return "", err
	}
	if dialect2020 {
		in.Value.SchemaDialect = validate.Dialect2020
	}
	js, err := json.Marshal(in.Value)
	if err != nil {
		return "", fmt.Errorf("encoding the schema: %w", err)
	}
	return string(js), nil
}

func inline(ref *openapi3.SchemaRef, visiting map[*openapi3.Schema]bool, depth int) (*openapi3.SchemaRef, error) {
	if ref == nil {
		return nil, nil
	}
	s := ref.Value
	if s == nil {
		return nil, fmt.Errorf("schema $ref %q is not resolved", ref.Ref)
	}
	if visiting[s] {
		return nil, fmt.Errorf("schema %s refers to itself, which drawbridge cannot validate yet; turn off validateRequestBody for this method", refName(ref))
	}
	if depth > maxNesting {
		return nil, fmt.Errorf("schema nests more than %d levels deep", maxNesting)
	}
	visiting[s] = true
	defer delete(visiting, s)

	cp := reflect.New(reflect.TypeFor[openapi3.Schema]()).Elem()
	cp.Set(reflect.ValueOf(s).Elem())
	cp.FieldByName("Origin").SetZero()
	// Every field that holds sub-schemas gets inlined copies; the rest of
	// the shallow copy is shared read-only with the definition.
	for i := range cp.NumField() {
		f := cp.Field(i)
		if !f.CanSet() {
			continue
		}
		switch f.Type() {
		case schemaRefType:
			sub, err := inline(f.Interface().(*openapi3.SchemaRef), visiting, depth+1)
			if err != nil {
				return nil, err
			}
			f.Set(reflect.ValueOf(sub))
		case schemaRefsType:
			old := f.Interface().(openapi3.SchemaRefs)
			if old == nil {
				continue
			}
			subs := make(openapi3.SchemaRefs, len(old))
			for j, r := range old {
				sub, err := inline(r, visiting, depth+1)
				if err != nil {
					return nil, err
				}
				subs[j] = sub
			}
			f.Set(reflect.ValueOf(subs))
		case schemasType:
			old := f.Interface().(openapi3.Schemas)
			if old == nil {
				continue
			}
			subs := make(openapi3.Schemas, len(old))
			for k, r := range old {
				sub, err := inline(r, visiting, depth+1)
				if err != nil {
					return nil, err
				}
				subs[k] = sub
			}
			f.Set(reflect.ValueOf(subs))
		case boolSchemaType:
			bs := f.Interface().(openapi3.BoolSchema)
			sub, err := inline(bs.Schema, visiting, depth+1)
			if err != nil {
				return nil, err
			}
			bs.Schema = sub
			f.Set(reflect.ValueOf(bs))
		}
	}
	out := cp.Addr().Interface().(*openapi3.Schema)
	return &openapi3.SchemaRef{Value: out}, nil
}

func refName(ref *openapi3.SchemaRef) string {
	if ref.Ref != "" {
		return fmt.Sprintf("%q", ref.Ref)
	}
	return "(inline)"
}
