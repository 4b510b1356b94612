// Package cli implements drawbridge's command line: serve, validate, pin,
// keys, quickstart and version. Each command exits 0 on success and otherwise
// prints a reason on stderr and exits non-zero.
package cli
