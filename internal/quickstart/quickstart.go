package quickstart

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/admin"
	"github.com/drawbridge-gw/drawbridge/internal/config"
	"github.com/drawbridge-gw/drawbridge/internal/gateway"
	"github.com/drawbridge-gw/drawbridge/internal/transport"
)

// Options configures the demo.
type Options struct {
	// Addr is where the gateway listens. It defaults to 127.0.0.1:8443.
	Addr string
	// Version is reported by the gateway.
	Version string
	// Ready, if set, is called with the gateway's address, the folder
	// holding its files, and the demo API key once it serves (tests use it).
	Ready func(addr net.Addr, dir, apiKey string)
}

// backendName is the name on the demo backend's certificate. It resolves
// nowhere: the gateway dials 127.0.0.1 and verifies the key, as it would
// an on-prem load balancer known only by IP.
const backendName = "backend.internal"

// Run starts the demo and blocks until ctx is done.
func Run(ctx context.Context, stdout, stderr io.Writer, o Options) error {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:8443"
	}
	dir, err := os.MkdirTemp("", "drawbridge-quickstart-")
	if err != nil {
		return fmt.Errorf("creating demo folder: %w", err)
	}
	defer os.RemoveAll(dir)

	backendCert, err := selfSigned([]string{backendName}, nil)
	if err != nil {
		return fmt.Errorf("generating backend certificate: %w", err)
	}
	backendAddr, stopBackend, err := startBackend(backendCert)
	if err != nil {
		return err
	}
	defer stopBackend()

	gwCert, err := selfSigned([]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback})
	if err != nil {
		return fmt.Errorf("generating gateway certificate: %w", err)
	}
	if err := writePEM(dir, "gateway", gwCert); err != nil {
		return err
	}
	backendPin := transport.SPKIPin(backendCert.Leaf)
	cfgPath := filepath.Join(dir, "drawbridge.yaml")
	cfgText := fmt.Sprintf(configTemplate, o.Addr, backendAddr, backendName, backendPin)
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		return fmt.Errorf("writing demo config: %w", err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	g, err := gateway.New(cfg, gateway.Options{Version: o.Version, Logger: logger})
	if err != nil {
		return fmt.Errorf("%w (pick another address with --addr)", err)
	}
	_, apiKey, err := admin.CreateKey(ctx, g.Store(), admin.CreateKeyRequest{Name: "demo-partner", Plan: "demo"}, time.Now())
	if err != nil {
		return fmt.Errorf("creating the demo API key: %w", err)
	}
	addr := g.ListenerAddrs()[0]
	port := addr.(*net.TCPAddr).Port
	caFile := filepath.Join(dir, "gateway.crt")
	fmt.Fprintf(stdout, `drawbridge quickstart

  demo backend   https://%s  self-signed certificate for %q
  backend pin    %s
  gateway        https://localhost:%d  → verifies the backend by that pin
  demo API key   %s  (plan "demo": 5 requests/s, burst 10, 1000 a day)

The gateway's config (%s):

%s
Try it (in another terminal):

  curl --cacert %s https://localhost:%d/hello
  curl --cacert %s -H 'x-api-key: %s' https://localhost:%d/orders/42
  curl --cacert %s -i https://localhost:%d/orders/42     # no key: 403 {"message":"Forbidden"}
  curl --cacert %s -i https://localhost:%d/nowhere       # 403 Missing Authentication Token

See the pin for yourself:   go run ./cmd/drawbridge pin https://%s --server-name %s

Press Ctrl-C to stop.
`, backendAddr, backendName, backendPin, port, apiKey, cfgPath, indent(cfgText),
		caFile, port, caFile, apiKey, port, caFile, port, caFile, port, backendAddr, backendName)
	if o.Ready != nil {
		o.Ready(addr, dir, apiKey)
	}
	// The access log goes to stderr so each curl shows up as it happens.
	return g.Run(ctx)
}

const configTemplate = `listeners:
  - name: public
    addr: %s
    tls: {cert: gateway.crt, key: gateway.key}
admin:
  addr: "off"
upstreams:
  onprem:
    targets: [https://%s]
    tls:
      server_name: %s
      pins: [%s]
routes:
  - path: /orders/{id}
    methods: [GET]
    upstream: onprem
    upstream_path: /api/v1/orders/{id}
    api_key_required: true
  - path: /hello
    methods: [GET]
    upstream: onprem
store: {type: memory}
plans:
  demo:
    throttle: {rate: 5, burst: 10}
    quota: {limit: 1000, period: DAY}
log: {access: stderr}
`

func indent(s string) string {
	out := make([]byte, 0, len(s)+200)
	start := true
	for i := 0; i < len(s); i++ {
		if start {
			out = append(out, "    "...)
		}
		out = append(out, s[i])
		start = s[i] == '\n'
	}
	return string(out)
}

// startBackend serves the demo API on a free loopback port.
func startBackend(cert tls.Certificate) (addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("starting demo backend: %w", err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]string{
				"message":         "hello from the on-prem backend",
				"path":            r.URL.Path,
				"x_forwarded_for": r.Header.Get("X-Forwarded-For"),
				"x_request_id":    r.Header.Get("X-Request-Id"),
				"tls":             tls.VersionName(r.TLS.Version),
			})
		}),
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
	}
	go srv.ServeTLS(ln, "", "")
	return ln.Addr().String(), func() { srv.Close() }, nil
}

// selfSigned makes an ECDSA P-256 certificate valid for a year.
func selfSigned(names []string, ips []net.IP) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: names[0], Organization: []string{"drawbridge quickstart"}},
		DNSNames:              names,
		IPAddresses:           ips,
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

func writePEM(dir, name string, cert tls.Certificate) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return fmt.Errorf("encoding %s key: %w", name, err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := os.WriteFile(filepath.Join(dir, name+".crt"), certPEM, 0o644); err != nil {
		return fmt.Errorf("writing %s certificate: %w", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".key"), keyPEM, 0o600); err != nil {
		return fmt.Errorf("writing %s key: %w", name, err)
	}
	return nil
}
