package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// maxDecodeNodes bounds the work aliases can multiply ("billion laughs");
// a real config decodes a few hundred nodes.
const maxDecodeNodes = 1_000_000

// decoder fills typed structs from yaml nodes strictly: an unknown key or a
// value of the wrong type is a problem, and decoding goes on to find more.
// yaml.v3's own decoder stops naming fields helpfully and loses lines, so
// this one walks the node tree itself.
type decoder struct {
	r *report
	// lines maps a pointer to a decoded field (or list item) to the line of
	// its key (or item). A field absent from the file, or set to null, has
	// no entry: defaults apply to it.
	lines map[any]int
	// bad holds pointers to fields whose value could not be decoded, so
	// validation does not pile a second message on the same mistake.
	bad map[any]bool
	// top maps each top-level key present in the file to its line.
	top map[string]int
	// failed holds scalars whose ${ENV} expansion was already reported.
	failed  map[*yaml.Node]bool
	nodes   int
	aborted bool
}

func newDecoder(r *report) *decoder {
	return &decoder{r: r, lines: map[any]int{}, bad: map[any]bool{}, top: map[string]int{}}
}

// where names the thing being decoded in messages: obj is the named object
// (`upstream "onprem"`), path the keys below it (`tls.ca`).
type where struct{ obj, path string }

func (w where) field(k string) where {
	if w.path == "" {
		w.path = k
	} else {
		w.path += "." + k
	}
	return w
}

func (w where) index(i int) where {
	w.path += "[" + strconv.Itoa(i) + "]"
	return w
}

func (w where) String() string {
	switch {
	case w.obj == "":
		return w.path
	case w.path == "":
		return w.obj
	}
	return w.obj + ": " + w.path
}

// prefix is w followed by ": ", or nothing at the top level.
func (w where) prefix() string {
	if s := w.String(); s != "" {
		return s + ": "
	}
	return ""
}

var (
	durationType = reflect.TypeFor[Duration]()
	configType   = reflect.TypeFor[Config]()
	listenerType = reflect.TypeFor[Listener]()
	routeType    = reflect.TypeFor[*Route]()
	upstreamType = reflect.TypeFor[*Upstream]()
	planType     = reflect.TypeFor[*Plan]()
)

func (d *decoder) decodeConfig(root *yaml.Node, cfg *Config) {
	d.decodeStruct(root, reflect.ValueOf(cfg).Elem(), where{}, root.Line)
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, w where, line int) {
	if d.aborted {
		return
	}
	d.nodes++
	if d.nodes > maxDecodeNodes {
		d.aborted = true
		d.r.add(n.Line, "the file expands to too many values (aliases referring to aliases?); simplify it")
		return
	}
	n = deref(n)
	if n == nil || isNull(n) {
		return
	}
	if d.failed[n] {
		d.markBad(v)
		return
	}
	if v.Type() == durationType {
		d.decodeDuration(n, v, w)
		return
	}
	if v.Type() == sniRoutesType {
		d.decodeSNI(n, v, w)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		e := reflect.New(v.Type().Elem())
		d.decode(n, e.Elem(), w, line)
		v.Set(e)
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.wrongType(n, v, w, "a mapping of keys to values")
			return
		}
		d.decodeStruct(n, v, w, line)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.wrongType(n, v, w, "a mapping of names to settings")
			return
		}
		d.decodeMap(n, v, w)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			want := "a list"
			if n.Kind == yaml.ScalarNode {
				want = fmt.Sprintf("a list such as [%s]", n.Value)
			}
			d.wrongType(n, v, w, want)
			return
		}
		d.decodeSlice(n, v, w)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.wrongType(n, v, w, "a single value")
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			d.wrongType(n, v, w, "true or false")
			return
		}
		d.scalar(n, v, w, "true or false")
	case reflect.Int, reflect.Int64:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			d.wrongType(n, v, w, "a whole number")
			return
		}
		d.scalar(n, v, w, "a whole number")
	case reflect.Float64:
		if t := n.ShortTag(); n.Kind != yaml.ScalarNode || (t != "!!int" && t != "!!float") {
			d.wrongType(n, v, w, "a number")
			return
		}
		d.scalar(n, v, w, "a number")
	default:
		// Only reachable if types.go gains a field of a new kind.
		d.r.add(n.Line, "%sinternal error: cannot decode into %s", w.prefix(), v.Type())
	}
}

// scalar converts n with yaml.v3's rules (hex, underscores, range checks).
func (d *decoder) scalar(n *yaml.Node, v reflect.Value, w where, want string) {
	p := reflect.New(v.Type())
	if err := n.Decode(p.Interface()); err != nil {
		d.wrongType(n, v, w, want)
		return
	}
	v.Set(p.Elem())
}

func (d *decoder) wrongType(n *yaml.Node, v reflect.Value, w where, want string) {
	d.markBad(v)
	d.r.add(n.Line, "%swant %s, got %s", w.prefix(), want, describe(n))
}

func (d *decoder) markBad(v reflect.Value) {
	if v.CanAddr() {
		d.bad[v.Addr().Interface()] = true
	}
}

func (d *decoder) decodeDuration(n *yaml.Node, v reflect.Value, w where) {
	dur, err := parseDuration(n)
	if err != nil {
		d.markBad(v)
		d.r.add(n.Line, "%s (%s)", err, w)
		return
	}
	v.SetInt(int64(dur))
}

// parseDuration reads Go duration syntax ("29s", "500ms", "1m30s"); a bare
// 0 is accepted as the one duration that needs no unit.
func parseDuration(n *yaml.Node) (Duration, error) {
	if n.Kind != yaml.ScalarNode {
		return 0, fmt.Errorf("bad duration: want a value such as \"30s\", got %s", describe(n))
	}
	dur, err := time.ParseDuration(strings.TrimSpace(n.Value))
	if err != nil {
		return 0, fmt.Errorf("bad duration %q: want a number with a unit, such as \"30s\", \"500ms\" or \"1m30s\"", n.Value)
	}
	return Duration(dur), nil
}

// UnmarshalYAML reads a Duration written as "29s", "500ms" or "1m30s".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	dur, err := parseDuration(deref(n))
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = dur
	return nil
}

// MarshalYAML writes d in the syntax UnmarshalYAML reads.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// String formats d like [time.Duration.String], e.g. "29s".
func (d Duration) String() string { return time.Duration(d).String() }

type pair struct{ k, v *yaml.Node }

// pairs returns the key/value pairs of mapping n, merge keys (<<) folded
// in, reporting repeated and non-scalar keys. Explicit keys win over merged
// ones, and earlier merge sources over later ones, as YAML specifies.
func (d *decoder) pairs(n *yaml.Node, w where) []pair {
	return d.collectPairs(n, w, false, map[string]int{}, map[*yaml.Node]bool{})
}

// collectPairs is pairs with the keys seen so far and the mappings being
// merged, which stops an anchor that merges itself. In a merged mapping a
// key already seen is overridden, not repeated; its own mistakes are
// reported where it is defined.
func (d *decoder) collectPairs(n *yaml.Node, w where, merged bool, seen map[string]int, merging map[*yaml.Node]bool) []pair {
	merging[n] = true
	defer delete(merging, n)
	var out []pair
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merges = append(merges, val)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			if !merged {
				d.r.add(k.Line, "%skeys must be plain names, got %s", w.prefix(), describe(k))
			}
			continue
		}
		if first, ok := seen[k.Value]; ok {
			if !merged {
				d.r.add(k.Line, "%skey %q is repeated; it is already set at line %d", w.prefix(), k.Value, first)
			}
			continue
		}
		seen[k.Value] = k.Line
		out = append(out, pair{k, val})
	}
	var sources []*yaml.Node
	for _, m := range merges {
		m = deref(m)
		if m != nil && m.Kind == yaml.SequenceNode {
			sources = append(sources, m.Content...)
		} else {
			sources = append(sources, m)
		}
	}
	for _, src := range sources {
		src = deref(src)
		if src == nil || src.Kind != yaml.MappingNode {
			d.r.add(src.Line, "%s<< must merge a mapping (such as *anchor), got %s", w.prefix(), describe(src))
			continue
		}
		if merging[src] {
			d.r.add(src.Line, "%s<< merges a mapping into itself", w.prefix())
			continue
		}
		if d.nodes++; d.nodes > maxDecodeNodes {
			return out
		}
		out = append(out, d.collectPairs(src, w, true, seen, merging)...)
	}
	return out
}

// yamlFields maps yaml keys of struct type t to field indexes.
func yamlFields(t reflect.Type) (map[string]int, []string) {
	idx := map[string]int{}
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		idx[name] = i
		names = append(names, name)
	}
	return idx, names
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, w where, line int) {
	t := v.Type()
	if f, ok := t.FieldByName("Line"); ok && f.Type.Kind() == reflect.Int && f.Tag.Get("yaml") == "-" {
		v.FieldByIndex(f.Index).SetInt(int64(line))
	}
	idx, names := yamlFields(t)
	for _, p := range d.pairs(n, w) {
		key := p.k.Value
		if t == configType {
			d.top[key] = p.k.Line
		}
		i, ok := idx[key]
		if !ok {
			d.unknownKey(p.k, t, names, w)
			continue
		}
		if isNull(deref(p.v)) {
			continue
		}
		fv := v.Field(i)
		d.lines[fv.Addr().Interface()] = p.k.Line
		d.decode(p.v, fv, w.field(key), p.k.Line)
	}
}

func (d *decoder) unknownKey(k *yaml.Node, t reflect.Type, names []string, w where) {
	what := "unknown key"
	if w.String() == "" {
		what = "unknown top-level key"
	}
	if s := suggest(k.Value, t, names); s != "" {
		d.r.add(k.Line, "%s%s %q; did you mean %s?", w.prefix(), what, k.Value, s)
		return
	}
	d.r.add(k.Line, "%s%s %q; valid keys here: %s", w.prefix(), what, k.Value, strings.Join(names, ", "))
}

// suggest finds the key the operator most likely meant: a near spelling
// here, or the same key one level down (cert for tls.cert).
func suggest(key string, t reflect.Type, names []string) string {
	best, bestDist := "", 3
	for _, n := range names {
		if strings.EqualFold(n, key) {
			return strconv.Quote(n)
		}
		if dist := editDistance(strings.ToLower(key), n); dist < bestDist && dist < len(n) {
			best, bestDist = n, dist
		}
	}
	if best != "" {
		return strconv.Quote(best)
	}
	for _, n := range names {
		f := t.Field(mustIndex(t, n))
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() != reflect.Struct || ft == durationType {
			continue
		}
		sub, _ := yamlFields(ft)
		if _, ok := sub[key]; ok {
			return fmt.Sprintf("%q under %q (%s: {%s: ...})", key, n, n, key)
		}
	}
	return ""
}

func mustIndex(t reflect.Type, key string) int {
	idx, _ := yamlFields(t)
	return idx[key]
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, w where) {
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		d.r.add(n.Line, "%sinternal error: map key %s", w.prefix(), t.Key())
		return
	}
	m := reflect.MakeMap(t)
	for _, p := range d.pairs(n, w) {
		key := p.k.Value
		ew := w.field(strconv.Quote(key))
		switch t.Elem() {
		case upstreamType:
			ew = where{obj: fmt.Sprintf("upstream %q", key)}
		case planType:
			ew = where{obj: fmt.Sprintf("plan %q", key)}
		}
		e := reflect.New(t.Elem()).Elem()
		if isNull(deref(p.v)) && t.Elem().Kind() == reflect.Pointer {
			// "name:" with nothing under it is still an entry, with defaults.
			e.Set(reflect.New(t.Elem().Elem()))
			d.decodeStruct(&yaml.Node{Kind: yaml.MappingNode}, e.Elem(), ew, p.k.Line)
		} else {
			d.decode(p.v, e, ew, p.k.Line)
		}
		if e.Kind() == reflect.Pointer && !e.IsNil() && e.Elem().Kind() == reflect.Struct {
			if f, ok := e.Elem().Type().FieldByName("Name"); ok && f.Tag.Get("yaml") == "-" {
				e.Elem().FieldByIndex(f.Index).SetString(key)
			}
		}
		m.SetMapIndex(reflect.ValueOf(key), e)
	}
	v.Set(m)
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, w where) {
	// Allocated once at full length so item addresses in d.lines stay valid.
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		e := s.Index(i)
		iw := w.index(i)
		switch v.Type().Elem() {
		case listenerType:
			iw = where{obj: d.listenerLabel(deref(item), i)}
		case routeType:
			iw = where{obj: d.routeLabel(deref(item), i)}
		}
		d.lines[e.Addr().Interface()] = item.Line
		if isNull(deref(item)) {
			// "- " with nothing after it is still an item: validation then
			// says what it lacks.
			switch {
			case e.Kind() == reflect.Struct:
				d.decodeStruct(&yaml.Node{Kind: yaml.MappingNode}, e, iw, item.Line)
			case e.Kind() == reflect.Pointer && e.Type().Elem().Kind() == reflect.Struct:
				e.Set(reflect.New(e.Type().Elem()))
				d.decodeStruct(&yaml.Node{Kind: yaml.MappingNode}, e.Elem(), iw, item.Line)
			}
			continue
		}
		d.decode(item, e, iw, item.Line)
	}
	v.Set(s)
}

// listenerLabel names a listener before it is decoded, as validation will.
func (d *decoder) listenerLabel(n *yaml.Node, i int) string {
	if name := d.scalarAt(n, "name"); name != "" {
		return fmt.Sprintf("listener %q", name)
	}
	if addr := d.scalarAt(n, "addr"); addr != "" {
		return fmt.Sprintf("listener %q", addr)
	}
	return fmt.Sprintf("listener #%d", i+1)
}

// routeLabel names a route before it is decoded, as validation will.
func (d *decoder) routeLabel(n *yaml.Node, i int) string {
	if name := d.scalarAt(n, "name"); name != "" {
		return fmt.Sprintf("route %q", name)
	}
	path := d.scalarAt(n, "path")
	if path == "" {
		return fmt.Sprintf("route #%d", i+1)
	}
	methods := []string{DefaultMethod}
	if n != nil && n.Kind == yaml.MappingNode {
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value != "methods" {
				continue
			}
			if m := deref(n.Content[j+1]); m.Kind == yaml.SequenceNode && len(m.Content) > 0 {
				methods = methods[:0]
				for _, c := range m.Content {
					methods = append(methods, strings.ToUpper(deref(c).Value))
				}
			}
		}
	}
	return fmt.Sprintf("route %q", defaultRouteName(methods, strings.ToLower(d.scalarAt(n, "host")), path))
}

// defaultRouteName is "GET,POST /orders/{id}", with the host before the
// path when the route has one, so host-specific routes get names (and
// metric labels) of their own.
func defaultRouteName(methods []string, host, path string) string {
	return strings.Join(methods, ",") + " " + host + path
}

// scalarAt returns the scalar value of key in mapping n, or "" if it has
// none or its ${ENV} expansion failed.
func (d *decoder) scalarAt(n *yaml.Node, key string) string {
	if n == nil || n.Kind != yaml.MappingNode {
		return ""
	}
	for j := 0; j+1 < len(n.Content); j += 2 {
		if n.Content[j].Value == key {
			if v := deref(n.Content[j+1]); v.Kind == yaml.ScalarNode && !isNull(v) && !d.failed[v] {
				return v.Value
			}
		}
	}
	return ""
}

// deref follows aliases to the node they name.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// describe says what a node is, for "want X, got Y" messages.
func describe(n *yaml.Node) string {
	n = deref(n)
	switch {
	case n == nil:
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "a mapping (key: value lines)"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind == yaml.ScalarNode:
		if n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) != 0 {
			return fmt.Sprintf("the quoted string %q", n.Value)
		}
		return strconv.Quote(n.Value)
	}
	return "an unsupported YAML value"
}
