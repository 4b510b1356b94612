package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/drawbridge-gw/drawbridge/internal/config"
	"github.com/drawbridge-gw/drawbridge/internal/gateway"
	"github.com/drawbridge-gw/drawbridge/internal/pin"
	"github.com/drawbridge-gw/drawbridge/internal/quickstart"
)

// version is set at build time with -ldflags "-X .../internal/cli.version=v1.2.3";
// otherwise the module version from the build info is used.
var version = ""

// Version reports which drawbridge this is.
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// Main runs the command line args and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			// One line per problem, FILE:LINE: reason, for editors and CI.
			fmt.Fprintln(stderr, ce.Error())
		} else {
			fmt.Fprintf(stderr, "drawbridge: %v\n", err)
		}
		return 1
	}
	return 0
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "drawbridge",
		Short: "API gateway: partner HTTPS in, verified HTTPS out to on-prem backends",
		Long: `drawbridge is an API gateway in one binary. Partners call it over HTTPS exactly
as they call Amazon API Gateway today; it forwards to on-premises backends over
HTTPS that is verified (pinned key, private CA or system roots), even when the
backend's certificate is self-signed.

Start with "drawbridge quickstart" to see it work in ten seconds.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(serveCmd(stderr), validateCmd(stdout, stderr), pinCmd(stdout), quickstartCmd(stdout, stderr), versionCmd(stdout), keysCmd(stdout, stderr), doctorCmd(stdout, stderr), importCmd(stdout, stderr), exportCmd(stdout, stderr))
	return root
}

func configFlag(cmd *cobra.Command, path *string) {
	cmd.Flags().StringVarP(path, "config", "c", "drawbridge.yaml", "config file (YAML)")
}

func serveCmd(stderr io.Writer) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "serve -c FILE",
		Short: "Run the gateway",
		Long: `Run the gateway described by the config file until SIGTERM or SIGINT.

SIGTERM drains: listeners stop accepting, in-flight requests get up to
shutdown_grace (default 30s) to finish. SIGHUP reloads the config file and the
listener certificates; if the new config is invalid the error is logged and
the old config keeps serving. Certificate files are also re-read when they
change on disk.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			logger := newLogger(stderr, cfg.Log.Level)
			slog.SetDefault(logger)
			g, err := gateway.New(cfg, gateway.Options{Version: Version(), Logger: logger})
			if err != nil {
				return err
			}
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go func() {
				for range hup {
					logger.Info("SIGHUP: reloading config and certificates")
					g.Reload() // logs its own outcome
				}
			}()
			return g.Run(cmd.Context())
		},
	}
	configFlag(cmd, &path)
	return cmd
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

func validateCmd(stdout, stderr io.Writer) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "validate -c FILE",
		Short: "Check a config file without starting anything",
		Long: `Check a config file: syntax, unknown keys, types, references between
upstreams and routes, certificate and key files, CA files and pins. Nothing is
bound and no network connection is made.

Every problem is printed as FILE:LINE: reason, all at once; the exit code is 1
if there is any. Insecure opt-ins (allow_insecure) are printed as warnings.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			if err := gateway.Check(cfg); err != nil {
				return err
			}
			for _, w := range cfg.Warnings() {
				fmt.Fprintf(stderr, "warning: %s\n", w)
			}
			fmt.Fprintf(stdout, "%s: ok\n", path)
			return nil
		},
	}
	configFlag(cmd, &path)
	return cmd
}

func pinCmd(stdout io.Writer) *cobra.Command {
	var o pin.Options
	cmd := &cobra.Command{
		Use:   "pin https://HOST:PORT [--server-name NAME]",
		Short: "Show a backend's certificate and the pin that trusts it",
		Long: `Connect to a TLS backend without trusting it, print its certificate chain
(subjects, names, issuer, validity, self-signed or not) and the SPKI pin of
its key as a line "pin: sha256/...", followed by a tls: block ready to paste
into an upstream.

Check the printed fingerprint out of band (on the backend itself) before you
trust it: this command shows what answered, not that it is genuine.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Target = args[0]
			return pin.Run(cmd.Context(), stdout, o)
		},
	}
	cmd.Flags().StringVar(&o.ServerName, "server-name", "", "name to send as SNI (default: the host in the URL)")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 10*time.Second, "connect and handshake timeout")
	return cmd
}

func quickstartCmd(stdout, stderr io.Writer) *cobra.Command {
	var o quickstart.Options
	cmd := &cobra.Command{
		Use:   "quickstart",
		Short: "Run a demo: a self-signed HTTPS backend behind a pinned gateway",
		Long: `Start a demo backend serving HTTPS with a freshly generated self-signed
certificate, and a drawbridge gateway in front of it that verifies the backend
by its pinned key. Prints the config it wrote, the pin, and curl commands that
work. Runs until Ctrl-C; nothing is left behind.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Version = Version()
			return quickstart.Run(cmd.Context(), stdout, stderr, o)
		},
	}
	cmd.Flags().StringVar(&o.Addr, "addr", "127.0.0.1:8443", "gateway listen address")
	return cmd
}

func versionCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the drawbridge version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(stdout, "drawbridge %s\n", Version())
			return nil
		},
	}
}
