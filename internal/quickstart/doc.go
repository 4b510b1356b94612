// Package quickstart is the newcomer's demo: a backend serving HTTPS with a
// freshly generated self-signed certificate (the "on-prem load balancer"),
// and a real drawbridge gateway in front of it that verifies the backend by
// its pinned key. Everything lives in a temporary folder removed on exit.
package quickstart
