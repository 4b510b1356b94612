// Package gwresponse writes the error responses drawbridge itself produces,
// byte for byte as Amazon API Gateway's default gateway responses, so
// partners that parse API Gateway errors today keep working unchanged.
//
// Every response type of API Gateway's table is here with its default
// status, message, and x-amzn-ErrorType header. drawbridge adds two types
// of its own for failures API Gateway folds into a 500: BadGateway (502,
// the backend could not be reached or failed TLS verification) and
// ServiceUnavailable (503, no healthy target). Both keep API Gateway's body
// shape.
package gwresponse
