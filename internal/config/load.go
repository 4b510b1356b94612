package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxFileBytes bounds the config file; a real one is a few kilobytes.
const maxFileBytes = 4 << 20

// maxProblems bounds the report; past it, more lines stop helping.
const maxProblems = 200

// Load reads the YAML config at path, expands ${ENV} references in its
// values, decodes it strictly, applies defaults, resolves relative file
// paths against the folder of path and validates the result.
//
// On failure the error is an [*Error] listing every problem found, each
// naming path and a line.
func Load(path string) (*Config, error) {
	return load(path, os.LookupEnv)
}

// load is Load with the environment passed in, so tests can run in parallel.
func load(path string, lookupEnv func(string) (string, bool)) (*Config, error) {
	data, err := readFile(path)
	if err != nil {
		var pe *fs.PathError
		msg := err.Error()
		if errors.As(err, &pe) {
			msg = pe.Err.Error()
		}
		return nil, &Error{
			Problems: []Problem{{File: path, Msg: "reading config file: " + msg}},
			err:      err,
		}
	}

	return loadData(path, data, lookupEnv)
}

// loadData is load once the file is read.
func loadData(path string, data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	r := &report{file: path}
	root := parse(r, data)
	if root == nil {
		return nil, r.err()
	}
	failed := map[*yaml.Node]bool{}
	expandEnv(r, root, "", lookupEnv, failed)

	cfg := &Config{File: path}
	d := newDecoder(r)
	d.failed = failed
	d.decodeConfig(root, cfg)
	if d.aborted {
		return nil, r.err()
	}

	v := &validator{report: r, lines: d.lines, bad: d.bad, top: d.top, dir: dirOf(path), cfg: cfg}
	v.run()
	cfg.lines = d.lines
	if len(r.problems) > 0 {
		return nil, r.err()
	}
	return cfg, nil
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return nil, &fs.PathError{Op: "read", Path: path, Err: errors.New("is a directory, not a YAML file")}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileBytes {
		return nil, &fs.PathError{Op: "read", Path: path, Err: errors.New("file is larger than 4 MiB; is this really a drawbridge config?")}
	}
	return data, nil
}

// report collects problems for one file.
type report struct {
	file     string
	problems []Problem
	full     bool
}

func (r *report) add(line int, format string, args ...any) {
	if r.full {
		return
	}
	if len(r.problems) >= maxProblems {
		r.full = true
		r.problems = append(r.problems, Problem{File: r.file, Line: line,
			Msg: "too many problems; fix the ones above and run again"})
		return
	}
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	r.problems = append(r.problems, Problem{File: r.file, Line: line, Msg: msg})
}

func (r *report) err() error {
	ps := append([]Problem(nil), r.problems...)
	if !r.full {
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].Line < ps[j].Line })
	}
	return &Error{Problems: ps}
}

var yamlErrLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// parse returns the top-level mapping of the file, or nil after reporting
// why there is none. An empty file yields an empty mapping.
func parse(r *report, data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	err := dec.Decode(&doc)
	if errors.Is(err, io.EOF) {
		return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: 1}
	}
	lines := bytes.Count(data, []byte("\n"))
	if len(data) > 0 && data[len(data)-1] != '\n' {
		lines++
	}
	if err != nil {
		reportYAMLError(r, err, lines)
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		r.add(next.Line, "a second YAML document starts here; put the whole configuration in one document (remove the \"---\" line)")
		return nil
	case !errors.Is(err, io.EOF):
		reportYAMLError(r, err, lines)
		return nil
	}

	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: 1}
		}
		root = root.Content[0]
	}
	if isNull(root) {
		return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: root.Line}
	}
	if root.Kind != yaml.MappingNode {
		r.add(root.Line, "the file must be a mapping of settings (listeners:, upstreams:, routes:, ...), got %s", describe(root))
		return nil
	}
	return root
}

// reportYAMLError reports a yaml.v3 syntax error at its line. yaml.v3
// numbers parser errors ("did not find expected ...") from 0 and scanner
// errors from 1, and leaves line 0 out; this corrects for both.
func reportYAMLError(r *report, err error, lines int) {
	for _, msg := range strings.Split(err.Error(), "\n") {
		msg = strings.TrimPrefix(strings.TrimSpace(msg), "yaml: ")
		if msg == "" || msg == "unmarshal errors:" {
			continue
		}
		n := 0
		if m := yamlErrLine.FindStringSubmatch(msg); m != nil {
			n, _ = strconv.Atoi(m[1])
			msg = m[2]
		}
		if strings.HasPrefix(msg, "did not find expected") {
			n++
		}
		n = max(1, min(n, lines))
		r.add(n, "YAML syntax: %s", msg)
	}
}

// expandEnv replaces ${NAME} in every scalar value (not in keys) under n
// with the value of the environment variable NAME. $${ stands for a
// literal ${. key names the enclosing key for messages.
// Nodes whose expansion failed go into failed, so that decoding does not
// report their unexpanded text a second time.
func expandEnv(r *report, n *yaml.Node, key string, lookupEnv func(string) (string, bool), failed map[*yaml.Node]bool) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			expandEnv(r, c, key, lookupEnv, failed)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			expandEnv(r, n.Content[i+1], n.Content[i].Value, lookupEnv, failed)
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "${") {
			return
		}
		out, changed, ok := expandString(r, n.Line, key, n.Value, lookupEnv)
		if !ok {
			failed[n] = true
			return
		}
		if !changed {
			return
		}
		n.Value = out
		// A plain scalar is typed by its text ("8443" is an int), so let the
		// expanded text decide; quoted and explicitly tagged ones keep their tag.
		if n.Style&(yaml.TaggedStyle|yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
			n.Tag = ""
		}
	}
	// Aliases point at nodes expanded where their anchor is defined.
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func expandString(r *report, line int, key, s string, lookupEnv func(string) (string, bool)) (out string, changed, ok bool) {
	where := ""
	if key != "" {
		where = key + ": "
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			break
		}
		if i > 0 && s[i-1] == '$' {
			// "$${" is an escaped literal "${".
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			changed = true
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			r.add(line, "%s%q has \"${\" without a closing \"}\"; write $${ for a literal ${", where, s[i:])
			return "", false, false
		}
		name := s[i+2 : i+end]
		if !envName.MatchString(name) {
			r.add(line, "%sbad environment variable reference \"${%s}\": a name is letters, digits and _ (defaults like ${X:-y} are not supported); write $${ for a literal ${", where, name)
			return "", false, false
		}
		val, ok := lookupEnv(name)
		if !ok {
			r.add(line, "%senvironment variable %s is not set (referenced as ${%s}); set it before starting drawbridge, or write $${%s} for a literal ${%s}", where, name, name, name, name)
			return "", false, false
		}
		b.WriteString(val)
		s = s[i+end+1:]
		changed = true
	}
	return b.String(), changed, true
}
