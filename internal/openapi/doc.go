// Package openapi turns an API definition exported from Amazon API Gateway
// (OpenAPI 3.0/3.1 or Swagger 2.0, JSON or YAML, with the
// x-amazon-apigateway-* extensions) into drawbridge's routes and upstreams.
//
// It has one job: definition in, [API] out. It does not know the config
// file format; internal/config and the import command turn an [API] into
// config. Every problem names the definition file, the path and the method.
package openapi
