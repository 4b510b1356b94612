package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/store"
)

// Options configure the admin API. Every field may be left zero.
type Options struct {
	// Store holds keys, plans and usage. If nil, those endpoints answer
	// 503 {"error":"no store configured"}.
	Store store.Store
	// Token is the bearer token every endpoint but /healthz and /readyz
	// requires. "" means no authentication, which the config only allows
	// on loopback addresses.
	Token string
	// Version is reported by /healthz.
	Version string
	// Metrics serves GET /metrics. If nil, /metrics is not served.
	Metrics http.Handler
	// Ready reports readiness for GET /readyz. If nil, always ready.
	Ready func() bool
	// Upstreams returns what GET /v1/upstreams shows as JSON. If nil, [].
	Upstreams func() any
	// Certificates returns what GET /v1/certificates shows as JSON: each
	// listener certificate's source (file, acme), names, issuer and
	// expiry. If nil, [].
	Certificates func() any
	// Now is the clock for created_at and revoked_at. If nil, time.Now.
	Now func() time.Time
	// Logger records changes to keys and plans, and internal errors. If
	// nil, slog.Default().
	Logger *slog.Logger
}

// Request body limits: JSON bodies are small; an import file may hold
// tens of thousands of keys.
const (
	maxJSONBody   = 1 << 20
	maxImportBody = 32 << 20
)

type server struct {
	opts   Options
	st     store.Store
	now    func() time.Time
	logger *slog.Logger
	// tokenSum is the SHA-256 of the token, compared in constant time
	// with that of the presented one: equal lengths leak nothing.
	tokenSum [32]byte
}

// New returns the admin API handler.
func New(o Options) http.Handler {
	s := &server{opts: o, st: o.Store, now: o.Now, logger: o.Logger}
	if s.now == nil {
		s.now = time.Now
	}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	s.tokenSum = sha256.Sum256([]byte(o.Token))

	mux := http.NewServeMux()
	// Probes stay open: orchestrators call them without credentials, and
	// they reveal nothing but the version.
	mux.Handle("GET /healthz", s.open(s.healthz))
	mux.Handle("GET /readyz", s.open(s.readyz))

	if o.Metrics != nil {
		mux.Handle("GET /metrics", s.authenticate(o.Metrics))
	}
	mux.Handle("GET /v1/upstreams", s.api(listOf(o.Upstreams)))
	mux.Handle("GET /v1/certificates", s.api(listOf(o.Certificates)))
	// Profiles are how a slow gateway is diagnosed in place; they expose
	// internals, so they sit behind the token like everything else.
	mux.Handle("GET /debug/pprof/", s.authenticate(http.HandlerFunc(pprof.Index)))
	mux.Handle("GET /debug/pprof/profile", s.authenticate(http.HandlerFunc(pprof.Profile)))
	mux.Handle("GET /debug/pprof/trace", s.authenticate(http.HandlerFunc(pprof.Trace)))

	mux.Handle("GET /v1/keys", s.api(s.needStore(s.listKeys)))
	mux.Handle("POST /v1/keys", s.api(s.needStore(s.createKey)))
	mux.Handle("POST /v1/keys/import", s.api(s.needStore(s.importKeys)))
	mux.Handle("GET /v1/keys/{name}", s.api(s.needStore(s.getKey)))
	mux.Handle("PATCH /v1/keys/{name}", s.api(s.needStore(s.patchKey)))
	mux.Handle("POST /v1/keys/{name}/revoke", s.api(s.needStore(s.revokeKey)))
	mux.Handle("GET /v1/keys/{name}/usage", s.api(s.needStore(s.usage)))

	mux.Handle("GET /v1/plans", s.api(s.needStore(s.listPlans)))
	mux.Handle("GET /v1/plans/{name}", s.api(s.needStore(s.getPlan)))
	mux.Handle("PUT /v1/plans/{name}", s.api(s.needStore(s.putPlan)))
	mux.Handle("DELETE /v1/plans/{name}", s.api(s.needStore(s.deletePlan)))
	return mux
}

// handlerFunc is an admin endpoint: it writes its answer, or returns an
// error that apiHandler writes as {"error": "..."} with the error's status.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// apiHandler writes a handlerFunc's error.
type apiHandler struct {
	s *server
	h handlerFunc
}

func (a apiHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	err := a.h(w, r)
	if err == nil {
		return
	}
	status := StatusOf(err)
	msg := err.Error()
	if status == http.StatusInternalServerError || errors.Is(err, store.ErrUnavailable) {
		a.s.logger.Error("admin API", "method", r.Method, "path", r.URL.Path, "status", status, "error", err)
		if status == http.StatusInternalServerError {
			// The operator reads the log; the caller learns only that
			// it was not their fault.
			msg = "internal error"
		}
	}
	writeJSON(w, status, map[string]string{"error": msg})
}

// api is an endpoint that needs the token.
func (s *server) api(h handlerFunc) http.Handler {
	return s.authenticate(apiHandler{s, h})
}

// open is an endpoint that needs no token.
func (s *server) open(h handlerFunc) http.Handler {
	return apiHandler{s, h}
}

func (s *server) authenticate(next http.Handler) http.Handler {
	if s.opts.Token == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="drawbridge admin"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *server) authorized(r *http.Request) bool {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) == 1
}

func (s *server) needStore(h handlerFunc) handlerFunc {
	if s.st == nil {
		return func(http.ResponseWriter, *http.Request) error { return errNoStore }
	}
	return h
}

func (s *server) healthz(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "version": s.opts.Version})
	return nil
}

func (s *server) readyz(w http.ResponseWriter, r *http.Request) error {
	// Not ready before the listeners serve and while draining, so a load
	// balancer in front stops sending before connections close.
	if s.opts.Ready != nil && !s.opts.Ready() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready"})
		return nil
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	return nil
}

// listOf answers with what list returns, or [] when there is no list.
func listOf(list func() any) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		var v any = []any{}
		if list != nil {
			v = list()
		}
		writeJSON(w, http.StatusOK, v)
		return nil
	}
}

func (s *server) listKeys(w http.ResponseWriter, r *http.Request) error {
	keys, err := ListKeys(r.Context(), s.st)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, keys)
	return nil
}

func (s *server) createKey(w http.ResponseWriter, r *http.Request) error {
	var req CreateKeyRequest
	if err := decodeBody(w, r, &req); err != nil {
		return err
	}
	k, value, err := CreateKey(r.Context(), s.st, req, s.now())
	if err != nil {
		return err
	}
	s.logger.Info("admin: key created", "key", k.Name, "key_id", k.ID, "plan", k.Plan)
	writeJSON(w, http.StatusCreated, CreateKeyResponse{Key: Info(k), Value: value})
	return nil
}

func (s *server) getKey(w http.ResponseWriter, r *http.Request) error {
	k, err := GetKey(r.Context(), s.st, r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, Info(k))
	return nil
}

func (s *server) patchKey(w http.ResponseWriter, r *http.Request) error {
	var p KeyPatch
	if err := decodeBody(w, r, &p); err != nil {
		return err
	}
	k, err := UpdateKey(r.Context(), s.st, r.PathValue("name"), p)
	if err != nil {
		return err
	}
	s.logger.Info("admin: key updated", "key", k.Name, "key_id", k.ID, "plan", k.Plan, "enabled", k.Enabled)
	writeJSON(w, http.StatusOK, Info(k))
	return nil
}

func (s *server) revokeKey(w http.ResponseWriter, r *http.Request) error {
	k, err := RevokeKey(r.Context(), s.st, r.PathValue("name"), s.now())
	if err != nil {
		return err
	}
	s.logger.Info("admin: key revoked", "key", k.Name, "key_id", k.ID)
	writeJSON(w, http.StatusOK, Info(k))
	return nil
}

func (s *server) importKeys(w http.ResponseWriter, r *http.Request) error {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxImportBody))
	if err != nil {
		return bodyError(err)
	}
	keys, err := ParseImport(r.Header.Get("Content-Type"), data)
	if err != nil {
		return err
	}
	res, err := ImportKeys(r.Context(), s.st, keys, r.URL.Query().Get("plan"), s.now())
	if err != nil {
		return err
	}
	s.logger.Info("admin: keys imported", "imported", res.Imported, "skipped", len(res.Skipped))
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (s *server) usage(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	rep, err := KeyUsage(r.Context(), s.st, r.PathValue("name"), q.Get("start"), q.Get("end"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

func (s *server) listPlans(w http.ResponseWriter, r *http.Request) error {
	plans, err := s.st.ListPlans(r.Context())
	if err != nil {
		return fmt.Errorf("listing plans: %w", err)
	}
	if plans == nil {
		plans = []store.Plan{}
	}
	writeJSON(w, http.StatusOK, plans)
	return nil
}

func (s *server) getPlan(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	p, err := s.st.Plan(r.Context(), name)
	if err != nil {
		return fmt.Errorf("plan %q: %w", name, err)
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

func (s *server) putPlan(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	var p store.Plan
	if err := decodeBody(w, r, &p); err != nil {
		return err
	}
	switch p.Name {
	case "":
		p.Name = name
	case name:
	default:
		return errorf(http.StatusBadRequest, "plan name %q in the body differs from %q in the path", p.Name, name)
	}
	if err := CheckPlan(&p); err != nil {
		return err
	}
	if err := s.st.PutPlan(r.Context(), p); err != nil {
		return fmt.Errorf("storing plan %q: %w", name, err)
	}
	s.logger.Info("admin: plan stored", "plan", name)
	writeJSON(w, http.StatusOK, p)
	return nil
}

func (s *server) deletePlan(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if err := deletePlan(r.Context(), s.st, name); err != nil {
		return err
	}
	s.logger.Info("admin: plan deleted", "plan", name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// decodeBody reads one JSON value into v, refusing unknown fields (a
// misspelt "enabeld" must not silently do nothing) and trailing data.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	return decodeStrict(http.MaxBytesReader(w, r.Body, maxJSONBody), v)
}

func decodeStrict(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errorf(http.StatusBadRequest, "request body: want a JSON object, got nothing")
		}
		return bodyError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errorf(http.StatusBadRequest, "request body: unexpected data after the JSON value")
	}
	return nil
}

func bodyError(err error) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return errorf(http.StatusRequestEntityTooLarge, "request body: larger than %d bytes", tooBig.Limit)
	}
	return errorf(http.StatusBadRequest, "request body: %v", err)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store") // a new key's value must not linger in caches
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
