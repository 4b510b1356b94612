package listener

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watch reloads the certificate when either file changes on disk, and the
// client CA file and revoked file when they change, until ctx is done. It
// blocks; run it in its own goroutine.
//
// It watches the files' parent directories rather than the files, because
// the usual ways of replacing a certificate (writing a new file and renaming
// it over the old one, or Kubernetes swapping a "..data" symlink) replace
// the directory entry and would leave a watch on the old file dangling.
// Events are debounced (about 100ms) so a certificate and key replaced one
// after the other are loaded as a pair, and a file is reloaded only when
// its contents differ from what was last loaded or last tried.
//
// Reload errors are logged and the previous version of the broken file
// keeps being used; the other files still reload. onReload, if not nil, is
// called after every reload attempt of any of the files, with the current
// leaf or the error.
func (c *Certs) Watch(ctx context.Context, logger *slog.Logger, onReload func(leaf *x509.Certificate, err error)) {
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("cert", c.certFile, "key", c.keyFile)

	w, err := fsnotify.NewWatcher()
	if err != nil {
		logger.Error("watching certificate files; reload on signal only", "err", err)
		return
	}
	defer w.Close()
	for _, dir := range c.watchDirs() {
		if err := w.Add(dir); err != nil {
			logger.Error("watching certificate directory; reload on signal only", "dir", dir, "err", err)
			return
		}
	}

	var lastFailed [numParts][sha256.Size]byte
	check := func() {
		for _, r := range c.reloadIfChanged(&lastFailed) {
			var leaf *x509.Certificate
			if r.err != nil {
				logger.Error("reloading "+r.part.String()+"; keeping the previous one", "err", r.err)
			} else {
				leaf = c.Leaf()
				c.logLoaded(logger, r.part)
			}
			if onReload != nil {
				onReload(leaf, r.err)
			}
		}
	}
	// The files may have changed between loading and the watch starting.
	check()

	timer := time.NewTimer(watchDebounce)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case _, ok := <-w.Events:
			if !ok {
				return
			}
			timer.Reset(watchDebounce)
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			// Overflow means events were dropped; check anyway.
			logger.Warn("watching certificate files", "err", err)
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				timer.Reset(watchDebounce)
			}
		case <-timer.C:
			check()
		}
	}
}

// reloadResult is the outcome of one part's reload attempt.
type reloadResult struct {
	part part
	err  error
}

// reloadIfChanged reloads each part whose files changed; see
// [Certs.reloadPartLocked].
func (c *Certs) reloadIfChanged(lastFailed *[numParts][sha256.Size]byte) []reloadResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	var results []reloadResult
	for _, p := range c.parts() {
		if tried, err := c.reloadPartLocked(p, lastFailed); tried {
			results = append(results, reloadResult{p, err})
		}
	}
	return results
}

func (c *Certs) logLoaded(logger *slog.Logger, p part) {
	switch p {
	case partCert:
		leaf := c.Leaf()
		logger.Info("certificate reloaded", "subject", leaf.Subject.String(),
			"serial", leaf.SerialNumber.String(), "not_after", leaf.NotAfter)
	case partClientCAs:
		logger.Info("client CA file reloaded", "file", c.clientCAFile, "cas", c.clientCAs.Load().n)
	case partRevoked:
		logger.Info("revoked file reloaded", "file", c.revokedFile, "revoked", len(*c.revoked.Load()))
	}
}

func (c *Certs) watchDirs() []string {
	var dirs []string
	for _, f := range []string{c.certFile, c.keyFile, c.clientCAFile, c.revokedFile} {
		if f == "" {
			continue
		}
		dir := filepath.Dir(f)
		if abs, err := filepath.Abs(dir); err == nil {
			dir = abs
		}
		if !slices.Contains(dirs, dir) {
			dirs = append(dirs, dir)
		}
	}
	return dirs
}
