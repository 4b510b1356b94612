package topology

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/testutil/certs"
)

// nginxConf is the on-prem load balancer: TLS with a self-signed
// certificate on 443 (every address, so a new one works at once), HTTPS to
// the two apps with their certificates verified against the apps' CA, and
// the next app tried when one fails before answering
// (proxy_next_upstream). X-Lb-Addr tells the apps, and through their echo
// the test, which LB address the request came in on. The workers run as
// root because the test's folder is private to root.
//
// A second server, on lbProxyProtocolPort, is the target of the edge's L4
// terminate listener: it expects a PROXY protocol header before the TLS
// handshake and passes the client address it carries
// ($proxy_protocol_addr) to the apps as X-Forwarded-For and back to the
// client as X-Proxy-Protocol-Addr.
const nginxConf = `user root;
worker_processes 1;
daemon off;
pid {{dir}}/nginx.pid;
error_log {{dir}}/error.log info;
events { worker_connections 256; }
http {
  access_log {{dir}}/access.log;
  client_body_temp_path {{dir}}/tmp/body;
  proxy_temp_path {{dir}}/tmp/proxy;
  fastcgi_temp_path {{dir}}/tmp/fastcgi;
  uwsgi_temp_path {{dir}}/tmp/uwsgi;
  scgi_temp_path {{dir}}/tmp/scgi;
  upstream apps {
    server {{app1}} max_fails=1 fail_timeout=30s;
    server {{app2}} max_fails=1 fail_timeout=30s;
    keepalive 8;
  }
  server {
    listen 443 ssl;
    server_name {{name}};
    ssl_certificate {{dir}}/lb.crt;
    ssl_certificate_key {{dir}}/lb.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
{{to_apps}}
    }
  }
  server {
    listen {{pp_port}} ssl proxy_protocol;
    server_name {{name}};
    ssl_certificate {{dir}}/lb.crt;
    ssl_certificate_key {{dir}}/lb.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
{{to_apps}}
      proxy_set_header X-Forwarded-For $proxy_protocol_addr;
      add_header X-Proxy-Protocol-Addr $proxy_protocol_addr always;
    }
  }
}
`

// nginxToApps is how both LB servers pass requests to the apps. (nginx
// inherits proxy_set_header only when a location sets none, so each
// location repeats them all.)
const nginxToApps = `      proxy_pass https://apps;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Lb-Addr $server_addr;
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate {{dir}}/apps-ca.crt;
      proxy_ssl_name app.internal;
      proxy_ssl_server_name on;
      proxy_connect_timeout 2s;
      proxy_next_upstream error timeout http_502 http_503;
      proxy_next_upstream_tries 2;`

// loadBalancer is nginx running in the onprem-lb namespace.
type loadBalancer struct {
	tp  *topology
	dir string
	p   *proc
}

// startNginx writes the config and the LB's certificate and starts nginx,
// waiting until it serves that certificate to the edge.
func startNginx(t *testing.T, tp *topology, dir string, cert, appsCA *certs.Cert) *loadBalancer {
	t.Helper()
	lb := &loadBalancer{tp: tp, dir: dir}
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	conf := strings.NewReplacer("{{to_apps}}", nginxToApps).Replace(nginxConf)
	conf = strings.NewReplacer(
		"{{dir}}", dir,
		"{{pp_port}}", lbProxyProtocolPort,
		"{{name}}", lbName,
		"{{app1}}", net.JoinHostPort(app1Addr, appPort),
		"{{app2}}", net.JoinHostPort(app2Addr, appPort),
	).Replace(conf)
	writeFile(t, filepath.Join(dir, "nginx.conf"), []byte(conf))
	writeFile(t, filepath.Join(dir, "apps-ca.crt"), appsCA.CertPEM)
	lb.writeCert(t, cert)
	lb.p = startIn(t, tp.nsName(roleLB), "nginx", dir, "nginx",
		"-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "error.log"))
	lb.waitServing(t, lbAddr, cert)
	return lb
}

func (lb *loadBalancer) writeCert(t *testing.T, c *certs.Cert) {
	t.Helper()
	writeFile(t, filepath.Join(lb.dir, "lb.crt"), c.CertPEM)
	writeFile(t, filepath.Join(lb.dir, "lb.key"), c.KeyPEM)
}

// swapCert installs another certificate and reloads nginx (SIGHUP), then
// waits until new connections from the edge get it.
func (lb *loadBalancer) swapCert(t *testing.T, addr string, c *certs.Cert) {
	t.Helper()
	lb.writeCert(t, c)
	if err := lb.p.signal(syscall.SIGHUP); err != nil {
		t.Fatalf("reloading nginx: %v", err)
	}
	lb.waitServing(t, addr, c)
}

// waitServing waits until a TLS handshake from the edge namespace to addr,
// trusting only c, succeeds: nginx is up and serves exactly c.
func (lb *loadBalancer) waitServing(t *testing.T, addr string, c *certs.Cert) {
	t.Helper()
	var lastErr error
	waitUntil(t, fmt.Sprintf("the LB on %s to serve %s", addr, c.Cert.Subject), 15*time.Second, func() bool {
		if lb.p.exited() {
			t.Fatalf("nginx exited: %v\n%s\n%s", lb.p.err, lb.p.out.String(), readFile(filepath.Join(lb.dir, "error.log")))
		}
		lastErr = handshakeFrom(lb.tp.nsName(roleEdge), addr, c)
		return lastErr == nil
	})
}

// handshakeFrom makes a TLS connection from the namespace to addr
// (an IP:port), trusting only c for lbName, and closes it.
func handshakeFrom(ns, addr string, c *certs.Cert) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := dialerIn(ns)(ctx, "tcp", net.JoinHostPort(addr, "443"))
	if err != nil {
		return err
	}
	defer conn.Close()
	tc := tls.Client(conn, &tls.Config{RootCAs: c.Pool(), ServerName: lbName, MinVersion: tls.VersionTLS12})
	if err := tc.HandshakeContext(ctx); err != nil {
		return err
	}
	return tc.Close()
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// readFile is for diagnostics: the content, or why there is none.
func readFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return string(b)
}
