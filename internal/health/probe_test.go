package health

import (
	"crypto/tls"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/testutil"
	"github.com/drawbridge-gw/drawbridge/internal/testutil/certs"
	"github.com/drawbridge-gw/drawbridge/internal/transport"
)

// tlsTarget is a TLS listener on loopback that completes handshakes with
// cert and then closes; stop closes the listener, so dials are refused.
func tlsTarget(t *testing.T, cert tls.Certificate) (addr string, stop func()) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				c.(*tls.Conn).Handshake()
			})
		}
	})
	var once sync.Once
	stop = func() { once.Do(func() { ln.Close(); wg.Wait() }) }
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

// errorsRecorder counts check results and keeps the errors of failed ones.
type errorsRecorder struct {
	mu      sync.Mutex
	results int
	errs    []error
}

func (r *errorsRecorder) onResult(_ string, _ bool, _ time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.results++
	if err != nil {
		r.errs = append(r.errs, err)
	}
}

func (r *errorsRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.results
}

func (r *errorsRecorder) last() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errs) == 0 {
		return nil
	}
	return r.errs[len(r.errs)-1]
}

// TestTCPProbe: a target is up while something accepts connections and
// goes down once nothing does.
func TestTCPProbe(t *testing.T) {
	t.Parallel()
	cert := certs.SelfSigned(t, certs.Options{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	addr, stop := tlsTarget(t, cert.TLS)
	rec := &recorder{}
	var d net.Dialer
	stopRun := runAsync(t, Options{
		Interval: 10 * time.Millisecond, Timeout: time.Second, HealthyThreshold: 1, UnhealthyThreshold: 2,
		Probe: TCPProbe(d.DialContext),
	}, nil, []Check{{URL: mustURL(t, "tcp://"+addr), Target: rec}})
	defer stopRun()
	testutil.WaitFor(t, "a first verdict", func() bool { return len(rec.verdicts()) > 0 })
	if !rec.up() {
		t.Fatalf("TCPProbe of a listening target: got down, want up")
	}
	stop()
	testutil.WaitFor(t, "the closed target to be marked down", func() bool { return !rec.up() })
}

// TestTLSProbe: the handshake is verified with the upstream's trust, so a
// target serving a certificate that matches no pin is down, and the reason
// names the pin mismatch.
func TestTLSProbe(t *testing.T) {
	t.Parallel()
	served := certs.SelfSigned(t, certs.Options{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	other := certs.SelfSigned(t, certs.Options{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	addr, _ := tlsTarget(t, served.TLS)
	for _, tc := range []struct {
		desc    string
		pin     string
		wantUp  bool
		wantErr string
	}{
		{desc: "pinned certificate", pin: transport.SPKIPin(served.Cert), wantUp: true},
		{desc: "another certificate's pin", pin: transport.SPKIPin(other.Cert), wantUp: false, wantErr: string(transport.ReasonPinMismatch)},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			h, err := transport.NewHandshaker(transport.Options{Upstream: "u", Pins: []string{tc.pin}})
			if err != nil {
				t.Fatal(err)
			}
			rec, errs := &recorder{}, &errorsRecorder{}
			var d net.Dialer
			stop := runAsync(t, Options{
				Interval: 10 * time.Millisecond, Timeout: time.Second, HealthyThreshold: 1, UnhealthyThreshold: 1,
				Probe: TLSProbe(d.DialContext, h), OnResult: errs.onResult,
			}, nil, []Check{{URL: mustURL(t, "tcp://"+addr), Target: rec}})
			defer stop()
			testutil.WaitFor(t, "two checks", func() bool { return errs.count() >= 2 })
			if got := rec.up(); got != tc.wantUp {
				t.Fatalf("TLSProbe with %s: up = %v, want %v (last error: %v)", tc.desc, got, tc.wantUp, errs.last())
			}
			if tc.wantErr != "" {
				err := errs.last()
				if _, ok := transport.AsVerifyError(err); !ok || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("TLSProbe error: got %v, want a *transport.VerifyError saying %q", err, tc.wantErr)
				}
			} else if err := errs.last(); err != nil {
				t.Errorf("TLSProbe error: got %v, want none", err)
			}
		})
	}
}
