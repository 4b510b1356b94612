package acme

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// newZapLogger is a zap logger that writes to logger: certmagic logs with
// zap, drawbridge with slog. Only the levels logger enables are encoded.
func newZapLogger(logger *slog.Logger) *zap.Logger {
	return zap.New(&slogCore{logger: logger, limit: &logLimit{last: map[string]time.Time{}}})
}

// noisyMessages are certmagic errors that any client can cause once per
// TLS handshake (a TLS-ALPN-01 hello for one of our names when no
// validation is under way): logged at warn at most once per
// noisyInterval, at debug otherwise, so that they cannot flood the log.
var noisyMessages = map[string]bool{"tls-alpn challenge": true}

const noisyInterval = time.Minute

// logLimit remembers when each noisy message was last logged at warn. It
// is shared by a core and the cores its With makes.
type logLimit struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// allow reports whether msg may be logged at warn now.
func (l *logLimit) allow(msg string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if last, ok := l.last[msg]; ok && now.Sub(last) < noisyInterval {
		return false
	}
	l.last[msg] = now
	return true
}

// slogCore is a zapcore.Core that forwards entries, with their fields, to
// an slog.Logger.
type slogCore struct {
	logger *slog.Logger
	fields []zapcore.Field
	limit  *logLimit
}

var _ zapcore.Core = (*slogCore)(nil)

func slogLevel(l zapcore.Level) slog.Level {
	switch {
	case l >= zapcore.ErrorLevel:
		return slog.LevelError
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	}
	return slog.LevelDebug
}

func (c *slogCore) Enabled(l zapcore.Level) bool {
	return c.logger.Enabled(context.Background(), slogLevel(l))
}

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	return &slogCore{logger: c.logger, limit: c.limit, fields: append(c.fields[:len(c.fields):len(c.fields)], fields...)}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	level := slogLevel(e.Level)
	if noisyMessages[e.Message] && level > slog.LevelWarn {
		level = slog.LevelDebug
		if c.limit.allow(e.Message, time.Now()) {
			level = slog.LevelWarn
		}
	}
	if !c.logger.Enabled(context.Background(), level) {
		return nil
	}
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fields {
		f.AddTo(enc)
	}
	attrs := make([]slog.Attr, 0, len(enc.Fields)+1)
	if e.LoggerName != "" {
		attrs = append(attrs, slog.String("component", e.LoggerName))
	}
	// Sorted: map order would shuffle the attributes of every line.
	for _, k := range slices.Sorted(maps.Keys(enc.Fields)) {
		attrs = append(attrs, slog.Any(k, enc.Fields[k]))
	}
	c.logger.LogAttrs(context.Background(), level, e.Message, attrs...)
	return nil
}

func (c *slogCore) Sync() error { return nil }
