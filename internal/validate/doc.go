// Package validate checks requests as an API Gateway request validator
// does, before they reach the backend: required headers and query string
// parameters (validateRequestParameters) and the JSON body against the
// method's model (validateRequestBody). Failures answer with API Gateway's
// exact 400 responses.
package validate
