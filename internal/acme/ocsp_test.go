package acme_test

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/drawbridge-gw/drawbridge/internal/testutil/pebbletest"
)

// ocspResponder is a real OCSP responder on loopback that answers "good"
// for every serial, signed by pebble's intermediate (pebble has no
// responder of its own), and counts the requests it answered.
type ocspResponder struct {
	srv     *httptest.Server
	issuer  atomic.Pointer[x509.Certificate]
	key     atomic.Value // crypto.Signer
	answers atomic.Int64
}

func startOCSPResponder(t *testing.T) *ocspResponder {
	t.Helper()
	o := &ocspResponder{}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		issuer, key := o.issuer.Load(), o.key.Load()
		if err != nil || issuer == nil || key == nil {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		req, err := ocsp.ParseRequest(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		now := time.Now()
		resp, err := ocsp.CreateResponse(issuer, issuer, ocsp.Response{
			Status:       ocsp.Good,
			SerialNumber: new(big.Int).Set(req.SerialNumber),
			ThisUpdate:   now.Add(-time.Minute),
			NextUpdate:   now.Add(24 * time.Hour),
		}, key.(crypto.Signer))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		o.answers.Add(1)
		w.Header().Set("Content-Type", "application/ocsp-response")
		w.Write(resp)
	}))
	t.Cleanup(o.srv.Close)
	return o
}

// TestOCSPStapling: a certificate whose issuer runs an OCSP responder is
// served with a stapled "good" response for that very certificate, so
// partners' clients need not ask the CA themselves.
func TestOCSPStapling(t *testing.T) {
	responder := startOCSPResponder(t)
	r := newRigOptions(t, pebbletest.Options{OCSPResponderURL: responder.srv.URL})
	issuer, key := r.pebble.Issuer()
	responder.issuer.Store(issuer)
	responder.key.Store(key)

	r.start([]string{domain}, false, true)
	roots := r.pebble.IssuerRoots()
	leaf := r.waitServed(domain, roots)
	if len(leaf.OCSPServer) == 0 || leaf.OCSPServer[0] != responder.srv.URL {
		t.Fatalf("issued leaf names OCSP servers %q, want %q (pebble's ocspResponderURL)", leaf.OCSPServer, responder.srv.URL)
	}

	var staple []byte
	deadline := time.Now().Add(30 * time.Second)
	for len(staple) == 0 {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", r.tlsLn.Addr().String(),
			&tls.Config{ServerName: domain, RootCAs: roots})
		if err == nil {
			staple = conn.ConnectionState().OCSPResponse
			conn.Close()
		}
		if len(staple) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("no stapled OCSP response after 30s (responder answered %d requests; last error %v)\nlogs:\n%s",
					responder.answers.Load(), err, r.logs)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	resp, err := ocsp.ParseResponseForCert(staple, leaf, issuer)
	if err != nil {
		t.Fatalf("stapled OCSP response: %v", err)
	}
	if resp.Status != ocsp.Good || resp.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Errorf("stapled OCSP response: status %d for serial %x, want good (%d) for %x", resp.Status, resp.SerialNumber, ocsp.Good, leaf.SerialNumber)
	}
	if responder.answers.Load() == 0 {
		t.Errorf("the OCSP responder was never asked; the staple did not come from it")
	}
}
