package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/drawbridge-gw/drawbridge/internal/openapi"
)

func importCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import",
		Short: "Import an API definition as drawbridge config",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return errors.New(`import what? use "drawbridge import openapi FILE"`)
		},
	}
	cmd.AddCommand(importOpenAPICmd(stdout, stderr))
	return cmd
}

type importFlags struct {
	upstreams       []string
	stage           string
	basePaths       []string
	stageVars       []string
	skipUnsupported bool
	acceptSkip      bool
	out             string
}

func importOpenAPICmd(stdout, stderr io.Writer) *cobra.Command {
	var f importFlags
	cmd := &cobra.Command{
		Use:   "openapi FILE [--upstream KEY=URL ...] [--stage NAME] [--stage-var K=V ...] [--base-path /prod ...] [--skip-unsupported] [-o FILE]",
		Short: "Turn an API Gateway export (OpenAPI 3.0/3.1, Swagger 2.0) into routes and upstreams",
		Long: `Read an API definition as API Gateway exports it (aws apigateway get-export
--export-type oas30 or swagger --parameters extensions='integrations'), JSON
or YAML, and write the routes and upstreams it describes as a drawbridge
config fragment: merge it into a config with listeners:, then give each
upstream its tls: pins or CA (drawbridge pin https://HOST:PORT prints them).

To keep the definition as the source of truth instead, name it in the
config (apis: [{openapi: FILE, ...}]).

--upstream KEY=URL says where a backend really is: KEY is a VPC link's
connectionId or an integration uri's host[:port], URL the https:// address
drawbridge should call. A VPC link must be given one; an INTERNET
integration defaults to its uri's host. --base-path /prod serves the routes
as the execute-api URL of stage prod does (give --base-path / too to serve
them at both).

Methods that cannot run outside AWS (Lambda and AWS service integrations,
authorizers) fail the import, all listed; --skip-unsupported imports the
rest and lists them. Every problem names the file, line, path and method.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImportOpenAPI(args[0], f, stdout, stderr)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&f.upstreams, "upstream", nil, "KEY=URL: the backend for a connectionId or uri host (repeatable)")
	fl.StringVar(&f.stage, "stage", "", "the stage being imported: resource policy statements for other stages do not apply")
	fl.StringArrayVar(&f.basePaths, "base-path", nil, "serve the routes under this path too, e.g. /prod as at the execute-api URL (repeatable; default /)")
	fl.StringArrayVar(&f.stageVars, "stage-var", nil, "NAME=VALUE for ${stageVariables.NAME} (repeatable)")
	fl.BoolVar(&f.skipUnsupported, "skip-unsupported", false, "import the rest when some methods cannot run here, and list them")
	fl.BoolVar(&f.acceptSkip, "accept-skip-verification", false, "import integrations with tlsConfig.insecureSkipVerification; drawbridge still verifies them by the pins or CA you give")
	fl.StringVarP(&f.out, "output", "o", "", "write the fragment to FILE instead of stdout")
	return cmd
}

func runImportOpenAPI(file string, f importFlags, stdout, stderr io.Writer) error {
	targets := map[string]string{}
	names := map[string]string{}
	for _, u := range f.upstreams {
		key, raw, ok := strings.Cut(u, "=")
		if !ok || key == "" {
			return fmt.Errorf("--upstream %q: want KEY=URL, e.g. --upstream vpclink-abc=https://10.0.0.5:443", u)
		}
		target, err := normalizeTarget(raw)
		if err != nil {
			return fmt.Errorf("--upstream %q: %w", u, err)
		}
		targets[key] = target
		names[key] = upstreamName(key)
	}
	for _, b := range f.basePaths {
		if err := openapi.CheckBasePath(b); err != nil {
			return fmt.Errorf("--base-path: %w", err)
		}
	}
	if len(f.basePaths) == 0 {
		f.basePaths = []string{"/"}
	}
	vars := map[string]string{}
	for _, kv := range f.stageVars {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("--stage-var %q: want NAME=VALUE", kv)
		}
		vars[k] = v
	}
	api, err := openapi.Import(file, openapi.Options{
		Upstreams:              names,
		Stage:                  f.stage,
		StageVariables:         vars,
		SkipUnsupported:        f.skipUnsupported,
		AcceptSkipVerification: f.acceptSkip,
	})
	var ie *openapi.Error
	if errors.As(err, &ie) {
		for _, p := range ie.Problems {
			fmt.Fprintln(stderr, p.String())
		}
		return fmt.Errorf("%d problem(s) in %s; nothing written", len(ie.Problems), file)
	}
	if err != nil {
		return err
	}
	var problems []string
	for _, u := range api.Upstreams {
		if t, ok := targets[u.Key]; ok {
			u.Target = t
			continue
		}
		switch {
		case u.VPCLink:
			problems = append(problems, fmt.Sprintf("%s: backend %q (a VPC link) has no address here: give it with --upstream %s=https://HOST:PORT", file, u.Key, u.Key))
		case strings.HasPrefix(u.Target, "http://"):
			problems = append(problems, fmt.Sprintf("%s: backend %q is plaintext %s; drawbridge speaks HTTPS to backends: give its HTTPS address with --upstream %s=https://HOST:PORT", file, u.Key, u.Target, u.Key))
		}
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(stderr, p)
		}
		return fmt.Errorf("%d problem(s) in %s; nothing written", len(problems), file)
	}
	out := renderFragment(api, f, targets)
	for _, w := range api.Warnings {
		fmt.Fprintln(stderr, "warning:", w.String())
	}
	for _, s := range api.Skipped {
		fmt.Fprintln(stderr, "skipped:", s.String())
	}
	if f.out == "" {
		_, err := stdout.Write(out)
		return err
	}
	if err := os.WriteFile(f.out, out, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", f.out, err)
	}
	fmt.Fprintf(stderr, "wrote %s: %d routes, %d upstreams; give each upstream its tls: pins or ca (drawbridge pin https://HOST:PORT), merge it into a config with listeners:, then drawbridge validate -c\n", f.out, len(api.Routes), len(api.Upstreams))
	return nil
}

// normalizeTarget checks an --upstream URL: https, a host, no path.
func normalizeTarget(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", errors.New("want an https://HOST[:PORT] URL")
	}
	if u.Scheme != "https" {
		return "", errors.New("drawbridge speaks HTTPS to backends; want https://HOST[:PORT]")
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", errors.New("give only https://HOST[:PORT]; paths come from the definition")
	}
	return "https://" + u.Host, nil
}

// upstreamName makes a config upstream name of a connectionId or host.
func upstreamName(key string) string {
	return strings.NewReplacer(":", "-", "/", "-").Replace(key)
}

type fragmentRoute struct {
	Path              string            `yaml:"path"`
	Methods           []string          `yaml:"methods,flow"`
	Upstream          string            `yaml:"upstream,omitempty"`
	UpstreamPath      string            `yaml:"upstream_path,omitempty"`
	UpstreamMethod    string            `yaml:"upstream_method,omitempty"`
	Timeout           string            `yaml:"timeout,omitempty"`
	APIKeyRequired    bool              `yaml:"api_key_required,omitempty"`
	RequestParameters map[string]string `yaml:"request_parameters,omitempty"`
	StatusMap         map[string]int    `yaml:"status_map,omitempty"`
	IP                *fragmentIP       `yaml:"ip,omitempty"`
	Validate          *fragmentValidate `yaml:"validate,omitempty"`
	Mock              *fragmentMock     `yaml:"mock,omitempty"`
}

type fragmentGatewayResponse struct {
	Status  int               `yaml:"status,omitempty"`
	Headers map[string]string `yaml:"headers,omitempty"`
	Body    string            `yaml:"body,omitempty"`
}

type fragmentIP struct {
	Allow []string `yaml:"allow,omitempty,flow"`
	Deny  []string `yaml:"deny,omitempty,flow"`
}

type fragmentValidate struct {
	RequiredHeaders      []string `yaml:"required_headers,omitempty,flow"`
	RequiredQuerystrings []string `yaml:"required_querystrings,omitempty,flow"`
	BodySchema           string   `yaml:"body_schema,omitempty"`
}

type fragmentMock struct {
	Status  int               `yaml:"status"`
	Body    string            `yaml:"body,omitempty"`
	Headers map[string]string `yaml:"headers,omitempty"`
}

// yamlScalar writes s as a YAML scalar on one line, quoted when it needs
// to be: double-quoted with escapes when it spans lines, since a block
// scalar would need the indentation of where it is written.
func yamlScalar(s string) string {
	if !strings.ContainsFunc(s, unsafeInComment) {
		return strings.TrimSuffix(string(marshalIndented(s, "")), "\n")
	}
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Style: yaml.DoubleQuotedStyle, Value: s}
	return strings.TrimSuffix(string(marshalIndented(n, "")), "\n")
}

// unsafeInComment reports whether r would end a YAML comment line or
// hide what follows it in a terminal.
func unsafeInComment(r rune) bool {
	return unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || r == '\u0085'
}

// commentSafe is s fit for a "# ..." line of the fragment: a definition's
// text (warnings quote it) must not be able to end the comment and
// inject config. Control characters are written as Go escapes.
func commentSafe(s string) string {
	if !strings.ContainsFunc(s, unsafeInComment) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unsafeInComment(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// renderFragment writes api as config YAML, with comments saying where it
// came from, what was left out and what the operator must add.
func renderFragment(api *openapi.API, f importFlags, targets map[string]string) []byte {
	var b bytes.Buffer
	title := ""
	if api.Title != "" {
		title = fmt.Sprintf(" (%q)", api.Title)
	}
	fmt.Fprintf(&b, "# Imported from %s%s by drawbridge import openapi.\n", commentSafe(api.File), title)
	if f.stage != "" {
		fmt.Fprintf(&b, "# Stage %s.\n", commentSafe(f.stage))
	}
	b.WriteString("# Merge into a config with listeners:, give each upstream its tls: pins or ca,\n# then check it with drawbridge validate -c FILE.\n")
	for _, w := range api.Warnings {
		fmt.Fprintf(&b, "# warning: %s\n", commentSafe(w.String()))
	}
	for _, s := range api.Skipped {
		fmt.Fprintf(&b, "# skipped: %s\n", commentSafe(s.String()))
	}
	if len(api.Upstreams) > 0 {
		// Written by hand for the comment where the pins go.
		b.WriteString("upstreams:\n")
		for _, u := range api.Upstreams {
			target := u.Target
			if t, ok := targets[u.Key]; ok {
				target = t
			}
			pin := "drawbridge pin " + target
			fmt.Fprintf(&b, "  %s:\n    targets: [%s]\n    tls:\n", yamlScalar(u.Name), yamlScalar(target))
			if u.ServerName != "" {
				fmt.Fprintf(&b, "      server_name: %s\n", yamlScalar(u.ServerName))
				pin += " --server-name " + u.ServerName
			}
			fmt.Fprintf(&b, "      # pins: [sha256/...]   # run: %s\n", commentSafe(pin))
		}
	}
	if len(api.GatewayResponses) > 0 {
		grs := map[string]fragmentGatewayResponse{}
		for typ, gr := range api.GatewayResponses {
			grs[typ] = fragmentGatewayResponse(gr)
		}
		b.Write(marshalIndented(map[string]any{"gateway_responses": grs}, ""))
	}
	routes := make([]fragmentRoute, 0, len(api.Routes)*len(f.basePaths))
	for _, base := range f.basePaths {
		routes = appendRoutes(routes, api.Routes, base)
	}
	b.Write(marshalIndented(map[string][]fragmentRoute{"routes": routes}, ""))
	return b.Bytes()
}

func appendRoutes(routes []fragmentRoute, from []openapi.Route, base string) []fragmentRoute {
	for _, r := range from {
		fr := fragmentRoute{Path: openapi.JoinBasePath(base, r.Path), Methods: []string{r.Method}, Upstream: r.Upstream, UpstreamPath: r.UpstreamPath,
			UpstreamMethod: r.UpstreamMethod, APIKeyRequired: r.APIKeyRequired, RequestParameters: r.RequestParameters,
			StatusMap: r.StatusMap}
		if r.Timeout > 0 {
			fr.Timeout = formatDuration(r.Timeout)
		}
		if r.IP != nil {
			fr.IP = &fragmentIP{Allow: r.IP.Allow, Deny: r.IP.Deny}
		}
		if v := r.Validate; v != nil {
			fr.Validate = &fragmentValidate{RequiredHeaders: v.RequiredHeaders, RequiredQuerystrings: v.RequiredQuery, BodySchema: v.BodySchema}
		}
		if m := r.Mock; m != nil {
			fr.Mock = &fragmentMock{Status: m.Status, Body: m.Body, Headers: m.Headers}
		}
		routes = append(routes, fr)
	}
	return routes
}

func marshalIndented(v any, indent string) []byte {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		// Only strings, lists and maps of them: cannot fail.
		panic(fmt.Sprintf("encoding the fragment: %v", err))
	}
	enc.Close()
	if indent == "" {
		return buf.Bytes()
	}
	lines := strings.SplitAfter(buf.String(), "\n")
	var out strings.Builder
	for _, l := range lines {
		if l != "" {
			out.WriteString(indent + l)
		}
	}
	return []byte(out.String())
}

func formatDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", int(d/time.Second))
	}
	return fmt.Sprintf("%dms", int(d/time.Millisecond))
}
