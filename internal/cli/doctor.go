package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/drawbridge-gw/drawbridge/internal/config"
	"github.com/drawbridge-gw/drawbridge/internal/doctor"
)

func doctorCmd(stdout, stderr io.Writer) *cobra.Command {
	var (
		path    string
		asJSON  bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "doctor -c FILE [--json] [--timeout 5s]",
		Short: "Check every hop of a config for real: certificates, DNS, TCP, TLS, health",
		Long: `Load the config and check every hop it describes, one line per hop:
each listener's certificate and key (parse, match, chain order, names,
expiry, client CA file), a Redis store (that it answers, over TLS verified
as the gateway does when store.tls is set, and how many keys and plans it
holds), and each upstream target's DNS name, TCP reach, TLS
handshake verified exactly as the gateway verifies it (pins, CA, system
roots, server_name, client certificate, min_version, legacy opt-ins) and, if
the upstream has one, a GET of its health path.

Each warning or failure is followed by the fix. Only the addresses in the
config are dialed. The exit code is 1 if any hop fails (warnings pass).
--json prints an array of {kind, name, target, status, detail, fix}.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			hops := doctor.Run(cmd.Context(), cfg, doctor.Options{Timeout: timeout})
			if asJSON {
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(hops); err != nil {
					return fmt.Errorf("writing json: %w", err)
				}
			} else {
				for _, h := range hops {
					fmt.Fprintln(stdout, h)
					if h.Status != doctor.OK && h.Fix != "" {
						fmt.Fprintf(stdout, "    fix: %s\n", h.Fix)
					}
				}
			}
			if doctor.Failed(hops) {
				n := 0
				for _, h := range hops {
					if h.Status == doctor.Fail {
						n++
					}
				}
				return fmt.Errorf("%d of %d hops failed", n, len(hops))
			}
			return nil
		},
	}
	configFlag(cmd, &path)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the hops as a JSON array")
	cmd.Flags().DurationVar(&timeout, "timeout", doctor.DefaultTimeout, "bound on each network step of one target (lookup, connect, handshake, health)")
	return cmd
}
