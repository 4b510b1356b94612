// Command app is the on-prem application server of the topology test: an
// HTTPS server that answers every request with a JSON echo of what reached
// it (method, path, query, selected headers, body) and its own name, so the
// test can see which app answered and that the request arrived intact
// after two TLS hops.
//
//	app -name app1 -addr 10.201.3.2:8443 -cert app.crt -key app.key
//
// It prints "listening" on stdout once it accepts connections.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Echo is the app's answer; the topology test decodes the same shape.
type Echo struct {
	App     string            `json:"app"`
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Query   string            `json:"query"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
}

// echoedHeaders are the request headers the echo includes: what the
// partner sent (x-marker), what drawbridge adds (x-forwarded-*,
// x-request-id) and what the load balancer adds (x-lb-addr, the address
// the LB was reached on). The API key is deliberately not among them.
var echoedHeaders = []string{"X-Marker", "X-Forwarded-For", "X-Forwarded-Proto", "X-Request-Id", "X-Lb-Addr"}

func main() {
	name := flag.String("name", "app", "name reported in every answer")
	addr := flag.String("addr", "127.0.0.1:8443", "address to listen on")
	certFile := flag.String("cert", "", "PEM certificate chain")
	keyFile := flag.String("key", "", "PEM private key")
	flag.Parse()
	if err := run(*name, *addr, *certFile, *keyFile); err != nil {
		fmt.Fprintf(os.Stderr, "app %s: %v\n", *name, err)
		os.Exit(1)
	}
}

func run(name, addr, certFile, keyFile string) error {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("loading certificate: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           echoHandler(name),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdownCtx)
	}()
	fmt.Println("listening")
	if err := srv.ServeTLS(ln, "", ""); err != http.ErrServerClosed {
		return err
	}
	return nil
}

func echoHandler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
			return
		}
		e := Echo{App: name, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Headers: map[string]string{}, Body: string(body)}
		for _, h := range echoedHeaders {
			if v := r.Header.Get(h); v != "" {
				e.Headers[h] = v
			}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(e)
	})
}
