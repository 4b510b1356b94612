package admin

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/auth"
	"github.com/drawbridge-gw/drawbridge/internal/store"
)

// KeyInfo is what the admin API shows of a key: never its value, nor its
// hash, which for a short chosen value would allow guessing it offline.
type KeyInfo struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	Plan        string     `json:"plan"`
	Description string     `json:"description"`
	Enabled     bool       `json:"enabled"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at"` // null: never
	RevokedAt   *time.Time `json:"revoked_at"` // null: not revoked
}

// Info is the shareable view of k.
func Info(k store.Key) KeyInfo {
	info := KeyInfo{
		ID: k.ID, Name: k.Name, Plan: k.Plan, Description: k.Description,
		Enabled: k.Enabled, CreatedAt: k.CreatedAt,
	}
	if !k.ExpiresAt.IsZero() {
		t := k.ExpiresAt
		info.ExpiresAt = &t
	}
	if !k.RevokedAt.IsZero() {
		t := k.RevokedAt
		info.RevokedAt = &t
	}
	return info
}

// CreateKeyRequest is the body of POST /v1/keys.
type CreateKeyRequest struct {
	Name string `json:"name"`
	// Plan names a plan in the store. Required: as in API Gateway, a key
	// in no usage plan is refused.
	Plan string `json:"plan"`
	// Value is the key partners send; "" generates one (GenerateKey).
	// A given value keeps a partner's existing key working unchanged.
	Value       string `json:"value,omitempty"`
	Description string `json:"description,omitempty"`
	// Enabled defaults to true.
	Enabled   *bool      `json:"enabled,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// CreateKeyResponse is the answer to POST /v1/keys: the only time a key's
// value is shown.
type CreateKeyResponse struct {
	Key   KeyInfo `json:"key"`
	Value string  `json:"value"`
}

// maxDescLen bounds a key's description.
const maxDescLen = 1024

var nameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

func checkName(name string) error {
	// "." and ".." would not survive as a URL path segment.
	if !nameRE.MatchString(name) || name == "." || name == ".." {
		return errorf(http.StatusBadRequest, "key name %q: want 1 to 128 characters of A-Z a-z 0-9 . _ -", name)
	}
	return nil
}

// checkValue applies auth.ValidKeyValue, the rule the key check enforces
// on requests, so that no stored key is refused at request time.
func checkValue(v string) error {
	if err := auth.ValidKeyValue(v); err != nil {
		return &Error{Status: http.StatusBadRequest, Err: err}
	}
	return nil
}

func checkDescription(d string) error {
	if len(d) > maxDescLen {
		return errorf(http.StatusBadRequest, "description: at most %d bytes, got %d", maxDescLen, len(d))
	}
	return nil
}

// checkPlan reports a plan name that is not in st as a bad request (the
// request, not the URL, names something missing).
func checkPlan(ctx context.Context, st store.Store, plan string) error {
	if plan == "" {
		// As in API Gateway, a key in no usage plan is refused on every
		// route, so creating one is a mistake to report now.
		return errorf(http.StatusBadRequest, "plan is required: a key in no usage plan is refused on every route")
	}
	if _, err := st.Plan(ctx, plan); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errorf(http.StatusBadRequest, "plan %q does not exist; create it first (PUT /v1/plans/%s)", plan, plan)
		}
		return fmt.Errorf("looking up plan %q: %w", plan, err)
	}
	return nil
}

// CreateKey validates req and stores a new key, returning it and its value
// (req.Value, or a generated one). A taken name or value is an error
// wrapping store.ErrExists.
func CreateKey(ctx context.Context, st store.Store, req CreateKeyRequest, now time.Time) (store.Key, string, error) {
	if err := checkName(req.Name); err != nil {
		return store.Key{}, "", err
	}
	value := req.Value
	if value == "" {
		v, err := GenerateKey()
		if err != nil {
			return store.Key{}, "", err
		}
		value = v
	} else if err := checkValue(value); err != nil {
		return store.Key{}, "", err
	}
	if err := checkDescription(req.Description); err != nil {
		return store.Key{}, "", err
	}
	if err := checkPlan(ctx, st, req.Plan); err != nil {
		return store.Key{}, "", err
	}
	id, err := NewKeyID()
	if err != nil {
		return store.Key{}, "", err
	}
	k := store.Key{
		ID: id, Name: req.Name, Hash: auth.HashKey(value), Plan: req.Plan,
		Description: req.Description, Enabled: true, CreatedAt: now.UTC(),
	}
	if req.Enabled != nil {
		k.Enabled = *req.Enabled
	}
	if req.ExpiresAt != nil {
		k.ExpiresAt = req.ExpiresAt.UTC()
	}
	if err := st.CreateKey(ctx, k); err != nil {
		if errors.Is(err, store.ErrExists) {
			// The store does not say which of the two is taken, and
			// telling a caller that a value is in use reveals a key.
			return store.Key{}, "", &Error{Status: http.StatusConflict, Err: fmt.Errorf("creating key %q: the name or the value is already used by another key: %w", k.Name, err)}
		}
		return store.Key{}, "", fmt.Errorf("creating key %q: %w", k.Name, err)
	}
	return k, value, nil
}

// ListKeys returns every key, revoked ones included, sorted by name.
func ListKeys(ctx context.Context, st store.Store) ([]KeyInfo, error) {
	keys, err := st.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing keys: %w", err)
	}
	out := make([]KeyInfo, 0, len(keys))
	for _, k := range keys {
		out = append(out, Info(k))
	}
	return out, nil
}

// GetKey finds the key called name; the error wraps store.ErrNotFound if
// there is none.
func GetKey(ctx context.Context, st store.Store, name string) (store.Key, error) {
	k, err := st.KeyByName(ctx, name)
	if err != nil {
		return store.Key{}, fmt.Errorf("key %q: %w", name, err)
	}
	return k, nil
}

// RevokeKey revokes the key called name for good. Revoking a revoked key
// changes nothing, so a retried command succeeds.
func RevokeKey(ctx context.Context, st store.Store, name string, now time.Time) (store.Key, error) {
	k, err := GetKey(ctx, st, name)
	if err != nil {
		return store.Key{}, err
	}
	if !k.RevokedAt.IsZero() {
		return k, nil
	}
	k.RevokedAt = now.UTC()
	if err := st.UpdateKey(ctx, k); err != nil {
		return store.Key{}, fmt.Errorf("revoking key %q: %w", name, err)
	}
	return k, nil
}

// KeyPatch is the body of PATCH /v1/keys/{name}: absent fields stay as
// they are.
type KeyPatch struct {
	Enabled     *bool   `json:"enabled,omitempty"`
	Plan        *string `json:"plan,omitempty"` // another existing plan
	Description *string `json:"description,omitempty"`
	// ExpiresAt null removes the expiry.
	ExpiresAt optionalTime `json:"expires_at,omitzero"`
}

// optionalTime tells an absent JSON field (Set false) from null (Set,
// Time nil), which a *time.Time cannot.
type optionalTime struct {
	Set  bool
	Time *time.Time
}

func (o *optionalTime) UnmarshalJSON(b []byte) error {
	o.Set = true
	if string(b) == "null" {
		o.Time = nil
		return nil
	}
	var t time.Time
	if err := t.UnmarshalJSON(b); err != nil {
		return err
	}
	o.Time = &t
	return nil
}

func (o optionalTime) MarshalJSON() ([]byte, error) {
	if o.Time == nil {
		return []byte("null"), nil
	}
	return o.Time.MarshalJSON()
}

func (o optionalTime) IsZero() bool { return !o.Set }

// UpdateKey applies p to the key called name. A revoked key cannot be
// changed: revocation is final, and re-enabling must not look possible.
func UpdateKey(ctx context.Context, st store.Store, name string, p KeyPatch) (store.Key, error) {
	k, err := GetKey(ctx, st, name)
	if err != nil {
		return store.Key{}, err
	}
	if !k.RevokedAt.IsZero() {
		return store.Key{}, errorf(http.StatusConflict, "key %q was revoked at %s and cannot be changed", name, k.RevokedAt.Format(time.RFC3339))
	}
	if p.Enabled != nil {
		k.Enabled = *p.Enabled
	}
	if p.Plan != nil {
		if err := checkPlan(ctx, st, *p.Plan); err != nil {
			return store.Key{}, err
		}
		k.Plan = *p.Plan
	}
	if p.Description != nil {
		if err := checkDescription(*p.Description); err != nil {
			return store.Key{}, err
		}
		k.Description = *p.Description
	}
	if p.ExpiresAt.Set {
		k.ExpiresAt = time.Time{}
		if p.ExpiresAt.Time != nil {
			k.ExpiresAt = p.ExpiresAt.Time.UTC()
		}
	}
	if err := st.UpdateKey(ctx, k); err != nil {
		return store.Key{}, fmt.Errorf("updating key %q: %w", name, err)
	}
	return k, nil
}

const keyAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// GenerateKey returns a new random API key value: 40 characters of
// [A-Za-z0-9] from crypto/rand, the length API Gateway generates.
func GenerateKey() (string, error) {
	const n = 40
	// Bytes >= 248 are dropped so that each of the 62 characters is
	// equally likely (248 = 4*62).
	out := make([]byte, 0, n)
	buf := make([]byte, 64)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("generating key value: %w", err)
		}
		for _, b := range buf {
			if b < 248 && len(out) < n {
				out = append(out, keyAlphabet[b%62])
			}
		}
	}
	return string(out), nil
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewKeyID returns "key_" and 16 lowercase base32 characters (80 bits)
// from crypto/rand.
func NewKeyID() (string, error) {
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generating key id: %w", err)
	}
	return "key_" + idEncoding.EncodeToString(b[:]), nil
}
