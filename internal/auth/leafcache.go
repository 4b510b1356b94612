package auth

import (
	"crypto/x509"
	"sync"
	"weak"

	"github.com/drawbridge-gw/drawbridge/internal/certid"
)

// leafInfo is what the client certificate check derives from a
// certificate. It is never modified once made.
type leafInfo struct {
	fingerprint string // certid.Fingerprint
	subject     string // Subject.String(), RFC 2253
}

// maxLeafInfos bounds leafInfos: about one entry per open client TLS
// connection, each a hundred bytes or so.
const maxLeafInfos = 4096

// leafInfos remembers each client certificate's leafInfo, for every
// check. net/http hands each request of a connection the same
// *tls.ConnectionState, so keying by the certificate's pointer hashes the
// DER and formats the subject once per connection, not once per request.
//
// Keys are weak pointers, so the cache keeps no certificate alive, and an
// address reused by a later certificate cannot match an old entry: weak
// pointers to different objects never compare equal, even after the first
// is freed.
var leafInfos = struct {
	mu sync.RWMutex
	m  map[weak.Pointer[x509.Certificate]]*leafInfo
}{m: make(map[weak.Pointer[x509.Certificate]]*leafInfo)}

// leafInfoOf returns cert's leafInfo, from leafInfos when it is there.
func leafInfoOf(cert *x509.Certificate) *leafInfo {
	k := weak.Make(cert)
	leafInfos.mu.RLock()
	li := leafInfos.m[k]
	leafInfos.mu.RUnlock()
	if li != nil {
		return li
	}
	li = &leafInfo{fingerprint: certid.Fingerprint(cert), subject: cert.Subject.String()}
	leafInfos.mu.Lock()
	defer leafInfos.mu.Unlock()
	if len(leafInfos.m) >= maxLeafInfos {
		pruneLeafInfos()
	}
	leafInfos.m[k] = li
	return li
}

// pruneLeafInfos drops the entries of freed certificates, and everything
// if that frees nothing: with maxLeafInfos connections open at once, a
// cold start costs one hash per connection, no more. leafInfos.mu must be
// held.
func pruneLeafInfos() {
	for k := range leafInfos.m {
		if k.Value() == nil {
			delete(leafInfos.m, k)
		}
	}
	if len(leafInfos.m) >= maxLeafInfos {
		clear(leafInfos.m)
	}
}
