package openapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
	"gopkg.in/yaml.v3"
)

// MaxFileBytes bounds a definition file and each file its $refs reach. API
// Gateway's own import limit is 6 MB; large exported definitions with
// documentation parts stay well under this.
const MaxFileBytes = 20 << 20

// maxNesting bounds how deeply mappings and lists may nest in a file.
// kin-openapi resolves schemas recursively; a definition nested thousands
// deep would exhaust the stack or take very long, while real models nest a
// few dozen levels at most.
const maxNesting = 64

// loaded is a definition with what resolves more of its $refs later.
type loaded struct {
	doc      *openapi3.T
	loader   *openapi3.Loader
	location *url.URL
}

// load reads the definition at path, in any of the supported versions and
// encodings, with its external $refs resolved relative to it. Swagger 2.0
// is converted to OpenAPI 3, x-amazon-apigateway-any-method included.
func load(path string) (*loaded, error) {
	data, err := readDefinition(path)
	if err != nil {
		return nil, err
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("not JSON or YAML: %v", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if err := checkNesting(&root); err != nil {
		return nil, err
	}
	key, version, err := specVersion(&root)
	if err != nil {
		return nil, err
	}

	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	location := &url.URL{Path: filepath.ToSlash(abs)}
	loader := &openapi3.Loader{
		Context:               context.Background(),
		IsExternalRefsAllowed: true,
		IncludeOrigin:         true,
		// Only local files, size-limited and nesting-checked: a
		// definition must not make the gateway fetch URLs (SSRF) at load.
		ReadFromURIFunc: refReader{dir: filepath.Dir(abs)}.read,
	}
	if key == "swagger" {
		if !strings.HasPrefix(version, "2.0") {
			return nil, fmt.Errorf("swagger version %q is not supported; use 2.0, or OpenAPI 3.0 or 3.1", version)
		}
		doc, err := loadSwagger2(data, loader, location)
		if err != nil {
			return nil, err
		}
		return &loaded{doc, loader, location}, nil
	}
	if !strings.HasPrefix(version, "3.0") && !strings.HasPrefix(version, "3.1") {
		return nil, fmt.Errorf("openapi version %q is not supported; use 3.0, 3.1 or Swagger 2.0", version)
	}
	doc, err := loader.LoadFromDataWithPath(data, location)
	if err != nil {
		return nil, fmt.Errorf("loading: %w", err)
	}
	return &loaded{doc, loader, location}, nil
}

func loadSwagger2(data []byte, loader *openapi3.Loader, location *url.URL) (*openapi3.T, error) {
	js, err := yamlToJSON(data)
	if err != nil {
		return nil, err
	}
	var doc2 openapi2.T
	if err := json.Unmarshal(js, &doc2); err != nil {
		return nil, fmt.Errorf("reading Swagger 2.0: %w", err)
	}
	doc, err := openapi2conv.ToV3WithLoader(&doc2, loader, location)
	if err != nil {
		return nil, fmt.Errorf("converting Swagger 2.0 to OpenAPI 3: %w", err)
	}
	// The converter leaves extensions as they are, so an ANY method would
	// keep Swagger 2.0 parameters (in: body) and $refs (#/definitions/).
	for path, item2 := range doc2.Paths {
		raw, ok := item2.Extensions[extAnyMethod]
		if !ok {
			continue
		}
		var op2 openapi2.Operation
		if err := decodeExt(raw, &op2); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, extAnyMethod, err)
		}
		op3, err := openapi2conv.ToV3Operation(doc.Components, item2, &op2, doc2.Consumes)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: converting to OpenAPI 3: %w", path, extAnyMethod, err)
		}
		if item3 := doc.Paths.Value(path); item3 != nil {
			item3.Extensions[extAnyMethod] = op3
		}
	}
	if err := loader.ResolveRefsIn(doc, location); err != nil {
		return nil, fmt.Errorf("resolving $refs: %w", err)
	}
	return doc, nil
}

// readDefinition reads the definition file at path, refusing anything but
// a regular file.
func readDefinition(path string) ([]byte, error) {
	// Checked before opening: opening a FIFO would block (a reload
	// holding its lock, and shutdown waiting on it).
	if fi, err := os.Stat(path); err == nil && !fi.IsDir() && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return nil, errors.New("is a directory, not a definition file")
	}
	return readLimited(f)
}

// readLimited reads a definition file, or one its $refs name, refusing
// one larger than MaxFileBytes.
func readLimited(f io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("file is larger than %d MiB; split it, or remove documentation parts and examples", MaxFileBytes>>20)
	}
	return data, nil
}

// refReader reads the files external $refs name: regular files in the
// definition's directory or below it, with the same limits as the
// definition itself. A $ref must not inline a secret from elsewhere on
// the host into the config, nor block a reload on a FIFO or device.
type refReader struct {
	dir string // the definition's directory, absolute
}

func (rr refReader) read(_ *openapi3.Loader, u *url.URL) ([]byte, error) {
	if u.Host != "" || (u.Scheme != "" && u.Scheme != "file") {
		return nil, fmt.Errorf("$ref %q: only local files are followed, not URLs", u.String())
	}
	p := filepath.FromSlash(u.Path)
	rel, err := filepath.Rel(rr.dir, p)
	if err != nil || !filepath.IsLocal(rel) {
		return nil, fmt.Errorf("$ref %q: outside the definition's directory %s; copy the file next to the definition", p, rr.dir)
	}
	data, err := rr.readRegular(rel)
	if err != nil {
		return nil, fmt.Errorf("$ref %q: %w", p, err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("$ref %q: not JSON or YAML: %v", p, err)
	}
	if err := checkNesting(&root); err != nil {
		return nil, fmt.Errorf("$ref %q: %w", p, err)
	}
	return data, nil
}

// readRegular reads rel through an os.Root, so that neither ".." nor a
// symbolic link leads out of the directory, and only if it is a regular
// file: opening a FIFO would block.
func (rr refReader) readRegular(rel string) ([]byte, error) {
	root, err := os.OpenRoot(rr.dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	fi, err := root.Lstat(rel)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	f, err := root.Open(rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	return readLimited(f)
}

// checkNesting refuses documents nested deeper than maxNesting, without
// recursion (the point is not to overflow anything). Aliases are followed,
// since a decoder expands them: each level of a chain of anchors can nest
// the previous one. A node already checked at the same depth or deeper is
// not checked again, so a document aliasing one anchor many times (a
// "billion laughs") costs at most maxNesting visits per node.
func checkNesting(root *yaml.Node) error {
	type item struct {
		n     *yaml.Node
		depth int
	}
	seen := map[*yaml.Node]int{}
	stack := []item{{root, 0}}
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if it.depth > maxNesting {
			return fmt.Errorf("line %d: nested more than %d levels deep (aliases expanded); a real API model is not", it.n.Line, maxNesting)
		}
		if d, ok := seen[it.n]; ok && d >= it.depth {
			continue
		}
		seen[it.n] = it.depth
		for _, c := range it.n.Content {
			if c.Kind == yaml.AliasNode {
				if c.Alias == nil {
					continue
				}
				c = c.Alias
			}
			d := it.depth
			if c.Kind == yaml.MappingNode || c.Kind == yaml.SequenceNode {
				d++
			}
			stack = append(stack, item{c, d})
		}
	}
	return nil
}

// specVersion is the top-level "openapi" or "swagger" key and its value.
func specVersion(root *yaml.Node) (key, version string, err error) {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	if n.Kind != yaml.MappingNode {
		return "", "", errors.New("not an OpenAPI definition: want a mapping with an \"openapi\" or \"swagger\" key")
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		switch k := n.Content[i].Value; k {
		case "openapi", "swagger":
			return k, n.Content[i+1].Value, nil
		}
	}
	return "", "", errors.New("not an OpenAPI definition: it has no top-level \"openapi\" (3.x) or \"swagger\" (2.0) key")
}

// yamlToJSON re-encodes YAML (or JSON) as JSON, for types that only
// unmarshal JSON.
func yamlToJSON(data []byte) ([]byte, error) {
	var v any
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("not JSON or YAML: %v", err)
	}
	js, err := json.Marshal(jsonable(v))
	if err != nil {
		return nil, fmt.Errorf("re-encoding as JSON: %w", err)
	}
	return js, nil
}

// jsonable turns yaml.v3's map[string]any / map[any]any into values
// encoding/json accepts.
func jsonable(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = jsonable(e)
		}
		return t
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case []any:
		for i, e := range t {
			t[i] = jsonable(e)
		}
		return t
	}
	return v
}
