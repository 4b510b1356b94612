package gateway

import (
	"errors"
	"net/http"

	"github.com/drawbridge-gw/drawbridge/internal/config"
	"github.com/drawbridge-gw/drawbridge/internal/gwresponse"
	"github.com/drawbridge-gw/drawbridge/internal/integration"
	"github.com/drawbridge-gw/drawbridge/internal/proxy"
	"github.com/drawbridge-gw/drawbridge/internal/validate"
)

// withMethodRequest puts the route's API Gateway method request stages in
// front of backend, in API Gateway's order: the request validator, then
// the integration request's parameter mappings and method. A route with
// neither gets backend unchanged.
func withMethodRequest(cfg *config.Config, rc *config.Route, backend http.Handler) (http.Handler, error) {
	params, errs := integration.ParseParameters(rc.RequestParameters)
	if len(errs) > 0 {
		// Config validation reports these with their line; this is a guard.
		return nil, errors.New(errs[0])
	}
	h := integration.New(integration.Options{Parameters: params, Method: rc.UpstreamMethod}, backend)
	if v := rc.Validate; v != nil {
		limit := maxBodyBytes(cfg)
		if limit <= 0 {
			limit = proxy.DefaultMaxBodyBytes
		}
		return validate.New(validate.Options{
			RequiredHeaders: v.RequiredHeaders,
			RequiredQuery:   v.RequiredQuerystrings,
			BodySchema:      v.BodySchema,
			MaxBodyBytes:    limit,
		}, h)
	}
	return h, nil
}

// gatewayResponses are the config's customized gateway responses.
func gatewayResponses(cfg *config.Config) gwresponse.Customs {
	if len(cfg.GatewayResponses) == 0 {
		return nil
	}
	c := gwresponse.Customs{}
	for typ, g := range cfg.GatewayResponses {
		c[gwresponse.Type(typ)] = &gwresponse.Custom{Status: g.Status, Headers: g.Headers, Body: g.Body}
	}
	return c
}
