package openapi

import "net"

func splitHostPort(hp string) (string, string, error) { return net.SplitHostPort(hp) }

func joinHostPort(host, port string) string { return net.JoinHostPort(host, port) }
