package config

import "time"

// Config is a whole drawbridge configuration file after parsing, defaults
// and validation. Relative file paths in it have already been resolved
// against the folder of the config file, and ${ENV} references expanded.
// A Config is read-only once returned by Load.
type Config struct {
	// File is the path the config was loaded from; messages name it.
	File string `yaml:"-"`

	Listeners []Listener           `yaml:"listeners"`
	Admin     Admin                `yaml:"admin"`
	Upstreams map[string]*Upstream `yaml:"upstreams"`
	Routes    []*Route             `yaml:"routes"`
	Store     Store                `yaml:"store"`
	Plans     map[string]*Plan     `yaml:"plans"`
	Log       Log                  `yaml:"log"`

	// Throttle is the gateway-wide throttle (API Gateway's account level):
	// one token bucket shared by every request of every route. Nil = none.
	Throttle *Throttle `yaml:"throttle"`
	// RateLimitHeaders adds Retry-After to 429 answers and the IETF
	// RateLimit headers to every throttled route's answers. It defaults to
	// false: API Gateway sends neither, and partners may compare responses.
	RateLimitHeaders bool `yaml:"rate_limit_headers"`
	// Partners are named callers. A partner is recognised by its API key
	// (the key's name is the partner's name) or its client certificate,
	// and may have IP rules of its own.
	Partners map[string]*Partner `yaml:"partners"`
	// APIs are API definitions (OpenAPI/Swagger exports of API Gateway)
	// whose routes are added to Routes at every load, so the definition
	// stays the source of truth.
	APIs []*API `yaml:"apis,omitempty"`
	// GatewayResponses customize drawbridge's own answers by API Gateway
	// response type (THROTTLED, DEFAULT_4XX, ...), as API Gateway's
	// gateway responses do; apis: definitions may add theirs.
	GatewayResponses map[string]*GatewayResponse `yaml:"gateway_responses,omitempty"`

	// ShutdownGrace is how long SIGTERM waits for in-flight requests to
	// finish before closing connections. It defaults to DefaultShutdownGrace.
	ShutdownGrace Duration `yaml:"shutdown_grace"`

	// importWarnings are what importing APIs noticed, as FILE:LINE lines.
	importWarnings []string

	// lines maps pointers to fields to the line that set them, for
	// messages that point at a key rather than at its object. Nil in a
	// Config not made by Load.
	lines map[any]int
}

// Listener is one partner-facing socket: HTTPS (type http, the default)
// or TLS routed by SNI (type tcp, the L4 tier).
type Listener struct {
	Line int `yaml:"-"`
	// Name identifies the listener in logs and metrics. It defaults to Addr.
	Name string `yaml:"name"`
	// Addr is host:port to listen on. Required.
	Addr string      `yaml:"addr"`
	TLS  ListenerTLS `yaml:"tls"`
	// Type is "http" (default: HTTPS for the API routes) or "tcp": the L4
	// tier, which routes each TLS connection by its SNI (see SNI) to an
	// upstream and copies bytes, as a network load balancer does.
	Type string `yaml:"type"`
	// SNI routes a tcp listener's connections by TLS server name to an
	// upstream: exact names, one-label wildcards ("*.example.com") and
	// "*" for anything else, including no SNI. Required for tcp listeners.
	SNI SNIRoutes `yaml:"sni,omitempty"`

	// ReadHeaderTimeout bounds how long a client may take to send request
	// headers. It defaults to DefaultReadHeaderTimeout.
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"`
	// IdleTimeout closes keep-alive connections idle this long. It defaults
	// to DefaultIdleTimeout; on a tcp listener it closes a connection with
	// no bytes either way for this long, and defaults to
	// DefaultTCPIdleTimeout.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes caps request line plus headers. It defaults to
	// DefaultMaxHeaderBytes.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxBodyBytes caps request bodies; larger ones get 413. It defaults to
	// DefaultMaxBodyBytes (10 MiB, API Gateway's limit).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// HTTPAddr is an optional host:port for plain HTTP (usually
	// 0.0.0.0:80). It answers ACME HTTP-01 challenges for tls.acme and
	// redirects every other request to HTTPS (308); it never serves the API.
	HTTPAddr string `yaml:"http_addr,omitempty"`
	// MaxConnections caps a tcp listener's open connections; one more is
	// closed at accept. It defaults to DefaultTCPMaxConnections. Only tcp
	// listeners have it.
	MaxConnections int `yaml:"max_connections,omitempty"`
}

// ListenerTLS is the certificate a listener serves.
type ListenerTLS struct {
	Line int `yaml:"-"`
	// Cert is a PEM file with the certificate chain, leaf first. Required
	// unless ACME is set.
	Cert string `yaml:"cert"`
	// Key is the PEM private key of the leaf (RSA, ECDSA or Ed25519).
	// Required with Cert.
	Key string `yaml:"key"`
	// MinVersion is "1.2" or "1.3". It defaults to "1.2".
	MinVersion string `yaml:"min_version"`
	// ClientCA is a PEM truststore of the CAs whose client certificates
	// partners may present (mutual TLS). Empty = none requested.
	ClientCA string `yaml:"client_ca"`
	// ClientAuth is "optional" (default with client_ca: verified if given;
	// routes decide whether one is required) or "require" (the handshake
	// fails without one).
	ClientAuth string `yaml:"client_auth"`
	// Revoked is a file of revoked client certificate fingerprints, one
	// "sha256:<hex>" per line; re-read on reload and when it changes.
	Revoked string `yaml:"revoked"`
	// ACME gets certificates for the names it lists from an ACME CA.
	// With Cert and Key too, those names are served the ACME certificate
	// and every other name the file certificate (see acme.go).
	ACME *ACME `yaml:"acme,omitempty"`
	// Mode is for tcp listeners only, and required there: "passthrough"
	// (the TLS session goes untouched to the target, whose own certificate
	// the client sees; no cert or key here) or "terminate" (this listener's
	// certificate is served and the target reached over verified TLS).
	Mode string `yaml:"mode,omitempty"`
}

// Admin is the operators' listener: /metrics, /healthz, /readyz.
type Admin struct {
	Line int `yaml:"-"`
	// Addr is host:port. It defaults to DefaultAdminAddr (loopback).
	// "off" disables the admin listener.
	Addr string `yaml:"addr"`
	// Token is the bearer token the admin API requires, usually written
	// as ${ENV_VAR}; TokenFile reads it from a file instead (Load puts the
	// file's contents in Token). Required when Addr is not a loopback
	// address. Never logged.
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
	// TLS serves the admin API over HTTPS; required when Addr is not a
	// loopback address. Only cert, key and min_version apply.
	TLS *ListenerTLS `yaml:"tls"`
}

// Upstream is a named pool of backend targets reached over verified TLS.
type Upstream struct {
	Line int `yaml:"-"`
	// Name is the map key, filled in by Load.
	Name string `yaml:"-"`
	// Targets are https:// URLs (host or IP, port defaults to 443).
	// http:// is refused unless AllowInsecure is set. Upstreams of tcp
	// listeners have tcp://host:port targets (passthrough: raw TCP) or
	// tls:// or https:// ones (terminate: verified TLS).
	Targets []string    `yaml:"targets"`
	TLS     UpstreamTLS `yaml:"tls"`
	// AllowInsecure permits http:// targets and tls.insecure_skip_verify.
	// It is insecure: the backend is then not authenticated, and every start
	// logs a warning naming this upstream.
	AllowInsecure bool `yaml:"allow_insecure"`

	// Balance is "round_robin" (default) or "least_requests".
	Balance string `yaml:"balance"`
	// DNSRefresh is how often host-name targets are re-resolved. It defaults
	// to DefaultDNSRefresh. IP targets are never resolved.
	DNSRefresh Duration `yaml:"dns_refresh"`
	// Resolver is an optional host:port of a DNS server used instead of the
	// system resolver for host-name targets.
	Resolver string `yaml:"resolver"`
	// DialTimeout bounds TCP connect plus TLS handshake. It defaults to
	// DefaultDialTimeout.
	DialTimeout Duration `yaml:"dial_timeout"`
	// MaxIdleConns is the keep-alive pool size per target. It defaults to
	// DefaultMaxIdleConnsPerTarget.
	MaxIdleConns int `yaml:"max_idle_conns"`
	// MaxConns caps connections per target; 0 means no limit.
	MaxConns int `yaml:"max_conns"`
	// HTTP2 offers HTTP/2 to the backend; it is used when the backend
	// selects it by ALPN, else HTTP/1.1. It defaults to true. HTTP/2 needs
	// fewer connections; HTTP/1.1 costs a Go or nginx backend less CPU per
	// request, so set false for the highest throughput to such backends.
	HTTP2 *bool `yaml:"http2"`

	Health  *HealthCheck `yaml:"health"`
	Passive Passive      `yaml:"passive"`

	// ProxyProtocol is "v1" or "v2" to send a PROXY protocol header with
	// the client's address before anything else on each connection (tcp
	// listeners only; the target must expect it). Empty sends none.
	ProxyProtocol string `yaml:"proxy_protocol,omitempty"`
}

// UpstreamTLS says how the backend's certificate is verified. Trust is the
// union of SystemRoots, CA and Pins: a chain to a trusted root with the
// expected name, or a leaf whose public key matches one of the pins.
type UpstreamTLS struct {
	Line int `yaml:"-"`
	// ServerName is sent as SNI and verified against the certificate,
	// independent of the dial address. It defaults to the target's host.
	ServerName string `yaml:"server_name"`
	// CA is a PEM file of trusted roots: a private CA or the self-signed
	// certificate itself.
	CA string `yaml:"ca"`
	// Pins are SPKI SHA-256 hashes, "sha256/<base64>"; any one matches.
	Pins []string `yaml:"pins"`
	// SystemRoots adds the operating system's trusted roots.
	SystemRoots bool `yaml:"system_roots"`
	// ClientCert and ClientKey are PEM files presented to the backend (mTLS).
	ClientCert string `yaml:"client_cert"`
	ClientKey  string `yaml:"client_key"`
	// InsecureSkipVerify turns verification off. It is insecure: anyone on
	// the path can impersonate the backend. Needs allow_insecure.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
	// MinVersion is "1.2" (default) or "1.3"; for upstreams also "1.0" or
	// "1.1", for old backends (every start warns).
	MinVersion string `yaml:"min_version"`
	// LegacyCiphers also offers the RSA-key-exchange, 3DES and CBC-SHA256
	// suites Go still implements, for old backends (upstreams only; every
	// start warns).
	LegacyCiphers bool `yaml:"legacy_ciphers"`
	// LegacyCommonName accepts a CA-verified certificate without any
	// subjectAltName when its Common Name is the server name (upstreams
	// only, needs ca or system_roots; every start warns).
	LegacyCommonName bool `yaml:"legacy_common_name"`
	// AcceptExpired accepts a pinned certificate outside its validity
	// period: the pinned key is the identity (upstreams only, needs pins;
	// every start warns).
	AcceptExpired bool `yaml:"accept_expired"`
}

// HealthCheck is an active check: a GET over verified TLS on a timer.
// Active checks find a dead target before a partner request does, at the
// cost of steady background traffic.
type HealthCheck struct {
	Line int `yaml:"-"`
	// Type is "http" (a GET of Path; the default for https:// targets),
	// "tcp" (a TCP connect; the default for tcp:// targets) or "tls" (a
	// TLS handshake verified with the upstream's tls settings; the
	// default for tls:// targets).
	Type string `yaml:"type"`
	Path string `yaml:"path"` // required for type http, e.g. /healthz
	// Interval between checks of one target. It defaults to DefaultHealthInterval.
	Interval Duration `yaml:"interval"`
	// Timeout of one check. It defaults to DefaultHealthTimeout.
	Timeout Duration `yaml:"timeout"`
	// HealthyThreshold consecutive successes mark a target up. Default 2.
	HealthyThreshold int `yaml:"healthy_threshold"`
	// UnhealthyThreshold consecutive failures mark a target down. Default 3.
	UnhealthyThreshold int `yaml:"unhealthy_threshold"`
}

// Passive ejects a target after connect or TLS failures seen on partner
// requests. It costs nothing when all is well but learns of a failure only
// when a request hits it.
type Passive struct {
	Line int `yaml:"-"`
	// MaxFails connect/TLS failures within FailWindow eject the target.
	// It defaults to DefaultPassiveMaxFails; -1 disables passive ejection.
	MaxFails int `yaml:"max_fails"`
	// FailWindow defaults to DefaultPassiveFailWindow.
	FailWindow Duration `yaml:"fail_window"`
	// EjectFor is how long an ejected target is skipped. It defaults to
	// DefaultPassiveEjectFor.
	EjectFor Duration `yaml:"eject_for"`
}

// Route maps partner requests to an upstream.
type Route struct {
	Line int `yaml:"-"`
	// Name identifies the route in logs and metrics. It defaults to
	// "METHODS PATH", e.g. "GET /orders/{id}".
	Name string `yaml:"name"`
	// Host optionally restricts the route to one Host header (no port).
	Host string `yaml:"host"`
	// Path is a template: literal segments, {param} and a final {proxy+}.
	Path string `yaml:"path"`
	// Methods are HTTP methods or ANY. It defaults to [ANY].
	Methods []string `yaml:"methods"`
	// Upstream names an entry of upstreams. Required.
	Upstream string `yaml:"upstream"`
	// UpstreamPath optionally rewrites the path using the same {params};
	// without it the request path is sent as is. The query string is
	// always passed through.
	UpstreamPath string `yaml:"upstream_path"`
	// Timeout for the whole upstream exchange. It defaults to
	// DefaultRouteTimeout (29 s, as API Gateway).
	Timeout Duration `yaml:"timeout"`
	// APIKeyRequired demands a valid x-api-key (AWS style).
	APIKeyRequired bool `yaml:"api_key_required"`
	// Throttle is this route's throttle (API Gateway's stage/method
	// level): one token bucket shared by all its callers. Nil = none.
	Throttle *Throttle `yaml:"throttle"`
	// LimitID names the throttle bucket of a route imported under apis:.
	// The copies of one method under several base_paths share it: base
	// paths are more URLs for one stage, not more capacity. "" uses Name.
	LimitID string `yaml:"-"`
	// PlanPath is the path usage plans' per-method throttles know the
	// route by: the definition's path, without a base path. "" uses Path.
	PlanPath string `yaml:"-"`
	// ClientCert is "required" to demand a verified client certificate on
	// this route (the listener must have tls.client_ca), or "" (default).
	ClientCert string `yaml:"client_cert"`
	// IP allows or denies callers by address; denied → 403 as an API
	// Gateway resource policy does.
	IP *IPRules `yaml:"ip"`
	// CORS answers browser preflight requests at the gateway.
	CORS *CORS `yaml:"cors"`

	// UpstreamMethod sends the request to the backend with this method
	// instead of its own (API Gateway's integration httpMethod).
	UpstreamMethod string `yaml:"upstream_method,omitempty"`
	// RequestParameters map request values to backend headers and query
	// parameters, in API Gateway's syntax:
	// "integration.request.header.X-Src": "method.request.querystring.src"
	// or a static "'value'". Everything else passes through unchanged.
	RequestParameters map[string]string `yaml:"request_parameters,omitempty"`
	// StatusMap maps the backend's status to the one the partner gets, as
	// an http integration's integration responses do: regular expressions
	// matched against the whole status ("4\\d{2}") and "default".
	// Unmatched statuses pass through unless "default" is given.
	StatusMap map[string]int `yaml:"status_map,omitempty"`
	// Validate checks requests as an API Gateway request validator does,
	// before they reach the backend; failures get 400.
	Validate *RouteValidate `yaml:"validate,omitempty"`
	// Mock answers every request itself, with no upstream (API Gateway's
	// mock integration: CORS preflights, health checks).
	Mock *Mock `yaml:"mock,omitempty"`
}

// RouteValidate is a route's request validator.
type RouteValidate struct {
	Line int `yaml:"-"`
	// RequiredHeaders and RequiredQuerystrings must be present and
	// non-empty, else 400 "Missing required request parameters: [...]".
	RequiredHeaders      []string `yaml:"required_headers"`
	RequiredQuerystrings []string `yaml:"required_querystrings"`
	// BodySchema is a JSON Schema (as JSON text) that an application/json
	// request body must match, else 400 "Invalid request body".
	BodySchema string `yaml:"body_schema"`
}

// Mock is a static answer.
type Mock struct {
	Line int `yaml:"-"`
	// Status defaults to 200.
	Status int `yaml:"status"`
	// Body is sent as application/json.
	Body    string            `yaml:"body"`
	Headers map[string]string `yaml:"headers"`
}

// GatewayResponse replaces one type of gateway response.
type GatewayResponse struct {
	Line int `yaml:"-"`
	// Status replaces the status code; 0 keeps the type's default.
	Status int `yaml:"status,omitempty"`
	// Headers are added to the answer.
	Headers map[string]string `yaml:"headers,omitempty"`
	// Body is the JSON body template; "" keeps the default. It may use
	// $context.error.messageString (the message, quoted),
	// $context.error.message, $context.error.responseType and
	// $context.requestId.
	Body string `yaml:"body,omitempty"`
}

// API imports an API definition's routes.
type API struct {
	Line int `yaml:"-"`
	// OpenAPI is the definition file: OpenAPI 3.0/3.1 or Swagger 2.0,
	// JSON or YAML, as API Gateway exports it. Required.
	OpenAPI string `yaml:"openapi"`
	// Upstreams maps each VPC link connectionId, or integration uri
	// host[:port], to an entry of upstreams:, which says how to reach and
	// verify it. Every backend the definition calls must be mapped.
	Upstreams map[string]string `yaml:"upstreams"`
	// Stage names the stage being served: the resource policy's
	// statements for other stages do not apply.
	Stage string `yaml:"stage"`
	// BasePaths are where the definition's paths are served: "/" as on a
	// custom domain with an empty base path mapping, "/prod" as at the
	// execute-api URL of stage prod (or a base path mapping "prod").
	// Several serve the same routes at each. It defaults to ["/"].
	BasePaths []string `yaml:"base_paths"`
	// Throttle applies to each imported route (API Gateway's stage
	// default method throttling). Nil = none.
	Throttle *Throttle `yaml:"throttle"`
	// StageVariables resolve ${stageVariables.NAME} in the definition.
	StageVariables map[string]string `yaml:"stage_variables"`
	// SkipUnsupported leaves out methods that cannot run here (Lambda,
	// AWS services, authorizers) instead of refusing the config; each
	// start warns about them.
	SkipUnsupported bool `yaml:"skip_unsupported"`
	// AcceptSkipVerification accepts integrations that told API Gateway
	// to skip TLS verification; drawbridge verifies them anyway, by the
	// mapped upstream's pins or CA.
	AcceptSkipVerification bool `yaml:"accept_skip_verification"`
}

// IPRules allow and deny client addresses (CIDRs or single IPs, v4 or
// v6). Deny wins; a non-empty allow list must match.
type IPRules struct {
	Line  int      `yaml:"-"`
	Allow []string `yaml:"allow"`
	Deny  []string `yaml:"deny"`
}

// CORS is a route's cross-origin policy.
type CORS struct {
	Line             int      `yaml:"-"`
	AllowOrigins     []string `yaml:"allow_origins"` // exact origins, or "*"
	AllowMethods     []string `yaml:"allow_methods"`
	AllowHeaders     []string `yaml:"allow_headers"`
	ExposeHeaders    []string `yaml:"expose_headers"`
	MaxAge           Duration `yaml:"max_age"`
	AllowCredentials bool     `yaml:"allow_credentials"`
}

// Partner is a named caller.
type Partner struct {
	Line int    `yaml:"-"`
	Name string `yaml:"-"`
	// ClientCert recognises the partner's certificate by exact subject
	// (RFC 2253, as "CN=acme,O=Acme") or fingerprint ("sha256:<hex>").
	ClientCert *PartnerCert `yaml:"client_cert"`
	// IP rules apply to this partner's requests in addition to the route's.
	IP *IPRules `yaml:"ip"`
}

// PartnerCert lists how a partner's client certificate is recognised.
type PartnerCert struct {
	Subjects     []string `yaml:"subjects"`
	Fingerprints []string `yaml:"fingerprints"`
}

// Store selects where keys, plans and counters live.
type Store struct {
	Line int    `yaml:"-"`
	Type string `yaml:"type"` // memory | bolt | redis; default bolt
	Path string `yaml:"path"` // bolt file; default drawbridge.db beside the config
	// FlushInterval is how often bolt writes counters to disk: on power
	// loss at most this much of quota and usage counts is lost; a clean
	// shutdown loses none. It defaults to DefaultFlushInterval.
	FlushInterval Duration `yaml:"flush_interval"`

	// Addr is one Redis host:port; Addrs several (a Cluster, or Sentinels
	// when MasterName is set).
	Addr       string   `yaml:"addr"`
	Addrs      []string `yaml:"addrs"`
	MasterName string   `yaml:"master_name"`
	Username   string   `yaml:"username"`
	Password   string   `yaml:"password"` // write it as ${ENV_VAR}; never logged
	DB         int      `yaml:"db"`
	// TLS verifies Redis's certificate as an upstream's is verified (ca,
	// pins, server_name, client_cert). Required when Redis is not on this
	// machine, unless AllowInsecure.
	TLS *UpstreamTLS `yaml:"tls"`
	// AllowInsecure permits plaintext to a Redis on another machine, or
	// tls.insecure_skip_verify. It is insecure: every start warns.
	AllowInsecure bool `yaml:"allow_insecure"`
	// Prefix is put before every Redis key. It defaults to "{drawbridge}:"
	// (a hash tag, so scripts work on a Cluster).
	Prefix string `yaml:"prefix"`
	// Timeout bounds one Redis operation. It defaults to DefaultStoreTimeout.
	Timeout Duration `yaml:"timeout"`
	// OnError is what throttles and quotas do while the store is
	// unreachable: fail_closed (default: refuse with 503, so no unmetered
	// traffic passes) or fail_open (let requests through, uncounted).
	// Key checks always fail closed.
	OnError string `yaml:"on_error"`
}

// Plan is a usage plan: throttle and quota for the keys in it.
type Plan struct {
	Line     int       `yaml:"-"`
	Name     string    `yaml:"-"`
	Throttle *Throttle `yaml:"throttle"`
	Quota    *Quota    `yaml:"quota"`
	// Methods override Throttle for one route, keyed as API Gateway's
	// method throttling: "GET /orders/{id}".
	Methods map[string]*Throttle `yaml:"methods"`
}

// Throttle is a token bucket: Rate requests/s refilled, Burst capacity.
type Throttle struct {
	Rate  float64 `yaml:"rate"`
	Burst int     `yaml:"burst"`
}

// Quota is Limit requests per Period (DAY, WEEK or MONTH, UTC).
type Quota struct {
	Limit  int64  `yaml:"limit"`
	Period string `yaml:"period"`
	Offset int64  `yaml:"offset"`
}

// Log configures logging.
type Log struct {
	Line int `yaml:"-"`
	// Level is debug, info (default), warn or error.
	Level string `yaml:"level"`
	// Access is where JSON access-log lines go: "stderr" (default),
	// "stdout", "off", or a file path.
	Access string `yaml:"access"`
}

// Duration is a time.Duration written in YAML as "29s", "500ms", "1m".
type Duration time.Duration

// HTTP2Enabled reports whether HTTP/2 is offered to the backend.
func (u *Upstream) HTTP2Enabled() bool { return u.HTTP2 == nil || *u.HTTP2 }

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
