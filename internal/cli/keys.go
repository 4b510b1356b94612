package cli

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/drawbridge-gw/drawbridge/internal/admin"
	"github.com/drawbridge-gw/drawbridge/internal/config"
	"github.com/drawbridge-gw/drawbridge/internal/gateway"
	"github.com/drawbridge-gw/drawbridge/internal/store"
	"github.com/drawbridge-gw/drawbridge/internal/transport"
)

// keysCmd is "drawbridge keys": partners' API keys, managed through the
// running gateway's admin API, or in the store itself when no gateway
// answers on admin.addr.
func keysCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Create, list, revoke and import partners' API keys",
		Long: `Manage the API keys partners send as x-api-key.

Each command reads the config file, then talks to the running gateway's admin
API on admin.addr (with admin.token). If nothing listens there, or admin is
"off", it opens the store the config names (bolt or redis) directly. A memory
store lives inside the gateway process, so it can only be reached through the
admin API.

A key's value is shown once, when it is created, and never again: drawbridge
keeps only its SHA-256.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.AddCommand(keysCreateCmd(stdout, stderr), keysListCmd(stdout, stderr), keysRevokeCmd(stdout, stderr), keysImportCmd(stdout, stderr))
	return cmd
}

func keysCreateCmd(stdout, stderr io.Writer) *cobra.Command {
	var (
		path      string
		req       admin.CreateKeyRequest
		expiresAt string
		disabled  bool
	)
	cmd := &cobra.Command{
		Use:   "create -c FILE --name NAME --plan PLAN [--value V]",
		Short: "Create a key and print its value, once",
		Long: `Create an API key in a usage plan and print its value on a line
"key: <value>". Without --value a random 40-character value is generated; with
it, a partner's existing key (20 to 128 printable ASCII characters) keeps
working unchanged.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if expiresAt != "" {
				t, err := time.Parse(time.RFC3339, expiresAt)
				if err != nil {
					return fmt.Errorf("--expires-at %q: want a time as 2027-01-31T00:00:00Z", expiresAt)
				}
				req.ExpiresAt = &t
			}
			if disabled {
				f := false
				req.Enabled = &f
			}
			b, err := openKeys(cmd.Context(), path, stderr)
			if err != nil {
				return err
			}
			defer b.close()
			k, value, err := b.create(cmd.Context(), req)
			if err != nil {
				return err
			}
			plan := k.Plan
			if plan == "" {
				plan = "none"
			}
			fmt.Fprintf(stdout, "created key %s (id %s, plan %s, enabled %t) in %s\n", k.Name, k.ID, plan, k.Enabled, b.where())
			fmt.Fprintln(stdout, "the value is shown only now; give it to the partner:")
			fmt.Fprintf(stdout, "key: %s\n", value)
			return nil
		},
	}
	configFlag(cmd, &path)
	cmd.Flags().StringVar(&req.Name, "name", "", "key name: 1 to 128 of A-Z a-z 0-9 . _ - (required)")
	cmd.Flags().StringVar(&req.Plan, "plan", "", "usage plan the key belongs to (required: a key in no plan is refused, as in API Gateway)")
	cmd.Flags().StringVar(&req.Value, "value", "", "the key's value, to keep an existing key (default: generated)")
	cmd.Flags().StringVar(&req.Description, "description", "", "free text")
	cmd.Flags().StringVar(&expiresAt, "expires-at", "", "RFC 3339 time after which the key is refused")
	cmd.Flags().BoolVar(&disabled, "disabled", false, "create the key disabled")
	cmd.MarkFlagRequired("name")
	cmd.MarkFlagRequired("plan")
	return cmd
}

func keysListCmd(stdout, stderr io.Writer) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "list -c FILE",
		Short: "List keys (never their values)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := openKeys(cmd.Context(), path, stderr)
			if err != nil {
				return err
			}
			defer b.close()
			keys, err := b.list(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tID\tPLAN\tENABLED\tCREATED\tEXPIRES\tREVOKED")
			for _, k := range keys {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%s\t%s\t%s\n", k.Name, k.ID, orDash(k.Plan), k.Enabled,
					k.CreatedAt.UTC().Format(time.RFC3339), timeOrDash(k.ExpiresAt), timeOrDash(k.RevokedAt))
			}
			return tw.Flush()
		},
	}
	configFlag(cmd, &path)
	return cmd
}

func keysRevokeCmd(stdout, stderr io.Writer) *cobra.Command {
	var path, name string
	cmd := &cobra.Command{
		Use:   "revoke -c FILE --name NAME",
		Short: "Revoke a key for good",
		Long:  "Revoke a key: it is refused from then on, and kept for usage reports. Revoking a revoked key succeeds.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := openKeys(cmd.Context(), path, stderr)
			if err != nil {
				return err
			}
			defer b.close()
			k, err := b.revoke(cmd.Context(), name)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "revoked: %s\n", k.Name)
			return nil
		},
	}
	configFlag(cmd, &path)
	cmd.Flags().StringVar(&name, "name", "", "name of the key (required)")
	cmd.MarkFlagRequired("name")
	return cmd
}

func keysImportCmd(stdout, stderr io.Writer) *cobra.Command {
	var path, plan string
	cmd := &cobra.Command{
		Use:   "import -c FILE KEYFILE",
		Short: "Import keys from API Gateway (CSV key file or get-api-keys JSON)",
		Long: `Import keys with their values unchanged, so partners change nothing.

KEYFILE is API Gateway's key file format (CSV with a header row: Name, Key and
optionally Description, Enabled, UsagePlanIds), the JSON output of
"aws apigateway get-api-keys --include-values", or a JSON array of
{name, value, description, enabled, plan}. Keys whose name exists are skipped,
never overwritten. If any key in the file is invalid, nothing is imported.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return fmt.Errorf("reading key file: %w", err)
			}
			b, err := openKeys(cmd.Context(), path, stderr)
			if err != nil {
				return err
			}
			defer b.close()
			res, err := b.importKeys(cmd.Context(), sniffKeyFile(data), data, plan)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "imported: %d\nskipped: %d\n", res.Imported, len(res.Skipped))
			for _, s := range res.Skipped {
				fmt.Fprintf(stdout, "  %s: %s\n", s.Name, s.Reason)
			}
			return nil
		},
	}
	configFlag(cmd, &path)
	cmd.Flags().StringVar(&plan, "plan", "", "plan for keys that name none that exists (UsagePlanIds are API Gateway's ids)")
	return cmd
}

// sniffKeyFile tells JSON from CSV by the first character, which for a
// CSV key file is a column name.
func sniffKeyFile(data []byte) string {
	t := bytes.TrimLeft(bytes.TrimPrefix(data, []byte("\ufeff")), " \t\r\n")
	if len(t) > 0 && (t[0] == '[' || t[0] == '{') {
		return "application/json"
	}
	return "text/csv"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func timeOrDash(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// keyBackend is where the keys commands act: the gateway's admin API, or
// the store itself. Both run the same admin package logic.
type keyBackend interface {
	create(ctx context.Context, req admin.CreateKeyRequest) (admin.KeyInfo, string, error)
	list(ctx context.Context) ([]admin.KeyInfo, error)
	revoke(ctx context.Context, name string) (admin.KeyInfo, error)
	importKeys(ctx context.Context, contentType string, data []byte, plan string) (admin.ImportResult, error)
	// where names the backend for messages.
	where() string
	close() error
}

// openKeys reaches the keys of the gateway configured in path: through its
// admin API if something listens on admin.addr, else in its store.
func openKeys(ctx context.Context, path string, stderr io.Writer) (keyBackend, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	reason := `admin is "off"`
	if cfg.Admin.Addr != "off" {
		c, err := newAdminClient(ctx, cfg.Admin)
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, err
		}
		reason = fmt.Sprintf("no gateway answers on admin.addr %s", cfg.Admin.Addr)
	}
	if cfg.Store.Type == "memory" {
		return nil, fmt.Errorf("%s, and store type memory lives inside the gateway process; start the gateway, or use a bolt or redis store", reason)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := gateway.OpenStore(cfg, logger)
	if err != nil {
		return nil, fmt.Errorf("%s; opening the store: %w", reason, err)
	}
	// The gateway writes the config's plans into the store when it
	// starts; do the same so that a key can be put in a plan of a store
	// no gateway has opened yet.
	if err := gateway.SeedPlans(ctx, cfg, st); err != nil {
		st.Close()
		return nil, err
	}
	where := cfg.Store.Type + " store"
	if cfg.Store.Type == "bolt" {
		where += " " + cfg.Store.Path
	}
	return &storeKeys{st: st, desc: where}, nil
}

// storeKeys acts on the store directly.
type storeKeys struct {
	st   store.Store
	desc string
}

func (s *storeKeys) create(ctx context.Context, req admin.CreateKeyRequest) (admin.KeyInfo, string, error) {
	k, value, err := admin.CreateKey(ctx, s.st, req, time.Now())
	return admin.Info(k), value, err
}

func (s *storeKeys) list(ctx context.Context) ([]admin.KeyInfo, error) {
	return admin.ListKeys(ctx, s.st)
}

func (s *storeKeys) revoke(ctx context.Context, name string) (admin.KeyInfo, error) {
	k, err := admin.RevokeKey(ctx, s.st, name, time.Now())
	return admin.Info(k), err
}

func (s *storeKeys) importKeys(ctx context.Context, contentType string, data []byte, plan string) (admin.ImportResult, error) {
	keys, err := admin.ParseImport(contentType, data)
	if err != nil {
		return admin.ImportResult{}, err
	}
	return admin.ImportKeys(ctx, s.st, keys, plan, time.Now())
}

func (s *storeKeys) where() string { return s.desc }
func (s *storeKeys) close() error  { return s.st.Close() }

// adminClient calls a running gateway's admin API: over HTTPS pinned to
// the admin certificate's key when admin.tls is set, else plain HTTP, and
// only to addresses of this machine.
type adminClient struct {
	base  string // http(s)://host:port
	addr  string
	token string
	http  *http.Client
}

// newAdminClient checks that something answers on addr (the error wraps
// ECONNREFUSED if nothing listens) and returns a client for it.
func newAdminClient(ctx context.Context, a config.Admin) (*adminClient, error) {
	dial, err := localAdminAddr(ctx, a.Addr)
	if err != nil {
		return nil, err
	}
	c := &adminClient{
		base:  "http://" + dial,
		addr:  dial,
		token: a.Token,
		http:  &http.Client{Timeout: 30 * time.Second},
	}
	if a.TLS != nil {
		// The CLI reads the certificate the gateway serves (not its key),
		// so it can trust exactly that key, whatever names it carries.
		leaf, err := readLeaf(a.TLS.Cert)
		if err != nil {
			return nil, fmt.Errorf("admin tls: %w", err)
		}
		tlsConfig, err := transport.NewTLSConfig(transport.Options{Upstream: "admin", Pins: []string{transport.SPKIPin(leaf)}})
		if err != nil {
			return nil, fmt.Errorf("admin tls: %w", err)
		}
		c.base = "https://" + dial
		c.http.Transport = &http.Transport{TLSClientConfig: tlsConfig}
	}
	if err := c.call(ctx, "GET", "/healthz", "", nil, nil); err != nil {
		return nil, err
	}
	return c, nil
}

// readLeaf parses the first certificate of a PEM file.
func readLeaf(file string) (*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("certificate file %q: no CERTIFICATE PEM block", file)
		}
		if block.Type == "CERTIFICATE" {
			return x509.ParseCertificate(block.Bytes)
		}
	}
}

// localAdminAddr is the address to dial for the admin listener bound to
// addr: loopback for a wildcard address, and only addresses of this
// machine, since the token travels in clear.
func localAdminAddr(ctx context.Context, addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("admin.addr %q: %w", addr, err)
	}
	if host == "" || host == "localhost" {
		return net.JoinHostPort("127.0.0.1", port), nil
	}
	ips := []net.IP{net.ParseIP(host)}
	if ips[0] == nil {
		addrs, err := net.DefaultResolver.LookupIP(ctx, "ip", host)
		if err != nil {
			return "", fmt.Errorf("admin.addr %q: %w", addr, err)
		}
		ips = addrs
	}
	if ips[0].IsUnspecified() {
		if ips[0].To4() != nil {
			return net.JoinHostPort("127.0.0.1", port), nil
		}
		return net.JoinHostPort("::1", port), nil
	}
	local, err := net.InterfaceAddrs()
	if err != nil {
		return "", fmt.Errorf("listing this machine's addresses: %w", err)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() && !hasIP(local, ip) {
			return "", fmt.Errorf("admin.addr %s is not an address of this machine; run drawbridge keys where the gateway runs (the admin token must not be sent to another machine)", addr)
		}
	}
	return net.JoinHostPort(ips[0].String(), port), nil
}

func hasIP(addrs []net.Addr, ip net.IP) bool {
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// call sends body (JSON-encoded unless it is []byte) and decodes a 2xx
// answer into out; other answers become errors carrying the API's message.
func (c *adminClient) call(ctx context.Context, method, path, contentType string, body, out any) error {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
		contentType = "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	res, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("admin API at %s: %w", c.addr, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("admin API at %s: reading the answer: %w", c.addr, err)
	}
	if res.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		if len(msg) > 200 {
			msg = msg[:200] + "..."
		}
		hint := ""
		switch res.StatusCode {
		case http.StatusUnauthorized:
			hint = " (check admin.token in the config)"
		case http.StatusNotFound, http.StatusMethodNotAllowed:
			if !strings.HasPrefix(strings.TrimSpace(string(data)), "{") {
				hint = " (is this gateway older than the keys API?)"
			}
		}
		return fmt.Errorf("admin API at %s: %s %s: %d %s%s", c.addr, method, path, res.StatusCode, msg, hint)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("admin API at %s: %s %s: decoding the answer: %w", c.addr, method, path, err)
	}
	return nil
}

func (c *adminClient) create(ctx context.Context, req admin.CreateKeyRequest) (admin.KeyInfo, string, error) {
	var res admin.CreateKeyResponse
	err := c.call(ctx, "POST", "/v1/keys", "", req, &res)
	return res.Key, res.Value, err
}

func (c *adminClient) list(ctx context.Context) ([]admin.KeyInfo, error) {
	var keys []admin.KeyInfo
	err := c.call(ctx, "GET", "/v1/keys", "", nil, &keys)
	return keys, err
}

func (c *adminClient) revoke(ctx context.Context, name string) (admin.KeyInfo, error) {
	var k admin.KeyInfo
	err := c.call(ctx, "POST", "/v1/keys/"+url.PathEscape(name)+"/revoke", "", nil, &k)
	return k, err
}

func (c *adminClient) importKeys(ctx context.Context, contentType string, data []byte, plan string) (admin.ImportResult, error) {
	path := "/v1/keys/import"
	if plan != "" {
		path += "?plan=" + url.QueryEscape(plan)
	}
	var res admin.ImportResult
	err := c.call(ctx, "POST", path, contentType, data, &res)
	return res, err
}

func (c *adminClient) where() string { return "the gateway at " + c.addr }
func (c *adminClient) close() error  { return nil }
