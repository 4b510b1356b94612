// Package integration does what API Gateway's integration request and mock
// integration do between the partner checks and the backend: it maps
// request values to backend headers and query parameters (requestParameters),
// changes the method sent to the backend (httpMethod), or answers a route
// itself with a static response (type mock).
package integration
