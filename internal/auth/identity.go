package auth

import "context"

// Identity is who called, once a check identified them. Fields a check
// did not establish are empty.
type Identity struct {
	// KeyID, KeyName and Plan come from the API key (store.Key's ID, Name
	// and Plan). KeyID is safe to log; the key's value is never kept.
	KeyID, KeyName, Plan string
	// Partner is the partner the request belongs to: the name of the
	// matching ClientCertOptions.Partners entry, or, for an API key, the
	// key's name.
	Partner string
	// CertFingerprint is "sha256:<lowercase hex of DER>" of the verified
	// client certificate, if there was one.
	CertFingerprint string
}

type identityKey struct{}

// WithIdentity returns ctx carrying id.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return withIdentity(ctx, &id)
}

// withIdentity stores id without copying it; id must not be modified
// afterwards, which lets the key check share one cached Identity between
// requests without allocating.
func withIdentity(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFrom returns the Identity a check put in ctx.
func IdentityFrom(ctx context.Context) (Identity, bool) {
	if id, ok := ctx.Value(identityKey{}).(*Identity); ok {
		return *id, true
	}
	return Identity{}, false
}

// identityFrom is IdentityFrom without the copy.
func identityFrom(ctx context.Context) *Identity {
	id, _ := ctx.Value(identityKey{}).(*Identity)
	return id
}
