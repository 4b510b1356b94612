// Command backend is the benchmark's stand-in for the on-premises system: an
// HTTPS server with a self-signed certificate that answers every request
// with the same small JSON body.
//
// It uses only the standard library, so what it costs per request is the
// same for every proxy under test.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// body is about 100 bytes, the size of a typical small API answer; a fixed
// slice keeps the backend's own cost per request low and constant.
var body = []byte(`{"id":"7d0c5b1e-3f4a-4c2e-9b8d-2a6f1e0c9d47","status":"ok","items":[1,2,3],"source":"backend.internal"}` + "\n")

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "backend: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("backend", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8444", "address to listen on")
	certFile := fs.String("cert", "", "PEM certificate file (required)")
	keyFile := fs.String("key", "", "PEM private key file (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *certFile == "" || *keyFile == "" {
		return errors.New("-cert and -key are required")
	}
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		return fmt.Errorf("loading key pair %q, %q: %w", *certFile, *keyFile, err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", *addr, err)
	}

	srv := newServer(cert)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	fmt.Printf("backend: listening on https://%s\n", ln.Addr())

	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	return nil
}

// newServer returns the backend's HTTPS server, ready for ServeTLS with
// empty file names.
func newServer(cert tls.Certificate) *http.Server {
	length := strconv.Itoa(len(body))
	return &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Drain what the client sent so the connection can be reused.
			io.Copy(io.Discard, r.Body)
			h := w.Header()
			h["Content-Type"] = []string{"application/json"}
			h["Content-Length"] = []string{length}
			w.Write(body)
		}),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}},
		ReadHeaderTimeout: 10 * time.Second,
		// Load generators cut connections at the end of every run; the
		// resulting handshake errors are noise, not findings.
		ErrorLog: log.New(io.Discard, "", 0),
	}
}
