// Command drawbridge is the drawbridge API gateway: partner HTTPS in,
// API Gateway-compatible answers, verified HTTPS out to on-premises
// backends. See internal/cli for the commands.
package main

import (
	"os"

	"github.com/drawbridge-gw/drawbridge/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
