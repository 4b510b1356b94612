// Package config turns a drawbridge YAML file into a typed, validated
// [Config]: it expands ${ENV} references, decodes strictly (unknown keys and
// wrong types are errors), applies the defaults in defaults.go, resolves
// relative file paths against the config file's folder and validates the
// result. Every problem is reported as "FILE:LINE: message", all of them at
// once, so an operator can fix a file in one pass.
//
// Config does no I/O beyond reading the config file and checking that the
// files it names exist; parsing certificates and dialing upstreams belong to
// the packages that use them.
package config
