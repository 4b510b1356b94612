package cli

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drawbridge-gw/drawbridge/internal/config"
	"github.com/drawbridge-gw/drawbridge/internal/openapi"
)

func exportCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Export the served API as a definition",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return errors.New(`export what? use "drawbridge export openapi -c FILE"`)
		},
	}
	var path, out string
	openapiCmd := &cobra.Command{
		Use:   "openapi -c FILE [-o FILE]",
		Short: "Write the config's routes as OpenAPI 3 with the x-amazon-apigateway extensions",
		Long: `Write the routes the config serves (its own and those of its apis:) as an
OpenAPI 3.0 definition with the x-amazon-apigateway-* extensions that
"drawbridge import openapi" and apis: read: integrations (http_proxy or
mock), request parameters, validators, API keys, timeouts.

Each upstream appears as the host[:port] of its first target; map it back
with apis: upstreams: or --upstream when importing. Route settings with no
API Gateway equivalent here (host, throttle, cors, client_cert) are
left out and listed on stderr.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			api, notes := apiOfConfig(cfg)
			for _, n := range notes {
				fmt.Fprintln(stderr, "not exported:", n)
			}
			doc, err := openapi.Export(api)
			if err != nil {
				return err
			}
			if out == "" {
				_, err := stdout.Write(doc)
				return err
			}
			if err := os.WriteFile(out, doc, 0o644); err != nil {
				return fmt.Errorf("writing %s: %w", out, err)
			}
			return nil
		},
	}
	configFlag(openapiCmd, &path)
	openapiCmd.Flags().StringVarP(&out, "output", "o", "", "write the definition to FILE instead of stdout")
	cmd.AddCommand(openapiCmd)
	return cmd
}

// apiOfConfig is the API cfg serves, and what of it has no place in a
// definition.
func apiOfConfig(cfg *config.Config) (*openapi.API, []string) {
	title := strings.TrimSuffix(filepath.Base(cfg.File), filepath.Ext(cfg.File))
	api := &openapi.API{File: cfg.File, Title: title}
	var notes []string
	used := map[string]bool{}
	for _, rc := range cfg.Routes {
		for _, set := range []struct {
			on   bool
			name string
		}{{rc.Host != "", "host"}, {rc.Throttle != nil, "throttle"}, {rc.CORS != nil, "cors"}, {rc.ClientCert != "", "client_cert"}} {
			if set.on {
				notes = append(notes, fmt.Sprintf("route %q: %s", rc.Name, set.name))
			}
		}
		for _, m := range rc.Methods {
			r := openapi.Route{Method: m, Path: rc.Path, Upstream: rc.Upstream, UpstreamPath: rc.UpstreamPath,
				UpstreamMethod: rc.UpstreamMethod, Timeout: rc.Timeout.D(), APIKeyRequired: rc.APIKeyRequired,
				RequestParameters: rc.RequestParameters, StatusMap: rc.StatusMap}
			if rc.IP != nil {
				// Exported as x-amazon-apigateway-policy.
				r.IP = &openapi.IPRules{Allow: rc.IP.Allow, Deny: rc.IP.Deny}
			}
			if rc.Timeout.D() == config.DefaultRouteTimeout {
				r.Timeout = 0 // the default on both sides
			}
			if v := rc.Validate; v != nil {
				r.Validate = &openapi.Validate{RequiredHeaders: v.RequiredHeaders, RequiredQuery: v.RequiredQuerystrings, BodySchema: v.BodySchema}
			}
			if mk := rc.Mock; mk != nil {
				r.Mock = &openapi.Mock{Status: mk.Status, Body: mk.Body, Headers: mk.Headers}
				r.Upstream = ""
			} else {
				used[rc.Upstream] = true
			}
			api.Routes = append(api.Routes, r)
		}
	}
	for typ, g := range cfg.GatewayResponses {
		if api.GatewayResponses == nil {
			api.GatewayResponses = map[string]openapi.GatewayResponse{}
		}
		api.GatewayResponses[typ] = openapi.GatewayResponse{Status: g.Status, Headers: g.Headers, Body: g.Body}
	}
	for _, name := range slices.Sorted(mapKeysOf(used)) {
		uc := cfg.Upstreams[name]
		if uc == nil || len(uc.Targets) == 0 {
			continue
		}
		target := uc.Targets[0]
		key := target
		if u, err := url.Parse(target); err == nil && u.Host != "" {
			key = u.Host
			if u.Port() == "443" && u.Scheme == "https" {
				key = u.Hostname()
			}
		}
		api.Upstreams = append(api.Upstreams, openapi.Upstream{Name: name, Key: key, Target: target, ServerName: uc.TLS.ServerName})
	}
	return api, notes
}

func mapKeysOf(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
