// Package auth decides whether a partner may call a route: it checks the
// API key, maps a verified client certificate to a partner, applies IP
// allow and deny lists, and answers CORS.
//
// Each check is an http.Handler stage built once per route with the shape
// New...(cfg, next) (http.Handler, error); bad configuration fails at
// build time, never on a request. Refusals are API Gateway's default
// gateway responses (see package gwresponse), and each refusal leaves a
// short reason in the request's observe.Record, never a key value.
//
// A route's chain, outermost first:
//
//	NewCORS          preflights are answered here and need no key
//	NewKeyCheck      x-api-key -> Identity{KeyID, KeyName, Plan, Partner}
//	NewClientCertCheck  verified client certificate -> Identity.Partner
//	NewIPFilter      route rules, then the identified partner's rules
//
// The key and certificate checks may come in either order; the second
// merges into the Identity the first put in the context, and refuses the
// request when the two name different partners. NewIPFilter must come
// after both, since partner rules need the Identity.
package auth
