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

// Watch reloads the certificate when either file changes on disk, until ctx
// is done. It blocks; run it in its own goroutine.
//
// It watches the files' parent directories rather than the files, because
// the usual ways of replacing a certificate (writing a new file and renaming
// it over the old one, or Kubernetes swapping a "..data" symlink) replace
// the directory entry and would leave a watch on the old file dangling.
// Events are debounced (about 100ms) so a certificate and key replaced one
// after the other are loaded as a pair, and a reload happens only when the
// files' contents differ from what was last loaded or last tried.
//
// Reload errors are logged and the previous certificate keeps serving.
// onReload, if not nil, is called after every reload attempt with the new
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

	var lastFailed [sha256.Size]byte
	check := func() {
		leaf, tried, err := c.reloadIfChanged(&lastFailed)
		if !tried {
			return
		}
		if err != nil {
			logger.Error("reloading certificate; keeping the previous one", "err", err)
		} else {
			logger.Info("certificate reloaded", "subject", leaf.Subject.String(),
				"serial", leaf.SerialNumber.String(), "not_after", leaf.NotAfter)
		}
		if onReload != nil {
			onReload(leaf, err)
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

// reloadIfChanged reloads unless the files hold what was last loaded or
// what last failed to load, so unrelated events in the directory and a
// broken file left in place do not cause repeated reloads or log lines.
func (c *Certs) reloadIfChanged(lastFailed *[sha256.Size]byte) (leaf *x509.Certificate, tried bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	certPEM, keyPEM, err := c.readFiles()
	if err != nil {
		// A file may be missing for a moment while it is replaced; the
		// event that completes the replacement triggers another check.
		return nil, true, err
	}
	sum := fingerprint(certPEM, keyPEM)
	if sum == c.sum || sum == *lastFailed {
		return nil, false, nil
	}
	leaf, err = c.loadLocked(certPEM, keyPEM)
	if err != nil {
		*lastFailed = sum
	}
	return leaf, true, err
}

func (c *Certs) watchDirs() []string {
	var dirs []string
	for _, f := range []string{c.certFile, c.keyFile} {
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
