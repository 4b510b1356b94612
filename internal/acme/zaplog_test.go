package acme

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/zap"
)

func TestZapToSlog(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	logger := newZapLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	logger.Named("obtain").With(zap.String("identifier", "api.example.com")).Error("could not get certificate", zap.Error(errors.New("urn:ietf:params:acme:error:rejectedIdentifier")), zap.Int("attempt", 2))
	logger.Debug("not shown at info")
	got := buf.String()
	want := `level=ERROR msg="could not get certificate" component=obtain attempt=2 error=urn:ietf:params:acme:error:rejectedIdentifier identifier=api.example.com`
	if !strings.Contains(got, want) {
		t.Errorf("zap Error through slog: got %q, want it to contain %q", got, want)
	}
	if strings.Contains(got, "not shown") {
		t.Errorf("zap Debug through a slog logger at info: got %q, want nothing", got)
	}
}
