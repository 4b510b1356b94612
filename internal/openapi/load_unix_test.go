//go:build unix

package openapi

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRefToFIFODoesNotBlock: a $ref to a FIFO is refused, not opened (an
// open would block the reload holding its lock, and shutdown with it).
func TestRefToFIFODoesNotBlock(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.json"), 0o600); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mkfifo: %v", err)
		}
		t.Skipf("mkfifo: %v", err)
	}
	def := filepath.Join(dir, "def.yaml")
	writeFile(t, def, refDefinition("fifo.json"))
	done := make(chan error, 1)
	go func() {
		_, err := Import(def, Options{})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("Import($ref to a FIFO) = %v; want not a regular file", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Import($ref to a FIFO) still blocked after 30s")
	}

	// The definition itself.
	fifo := filepath.Join(dir, "def-fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	go func() {
		_, err := Import(fifo, Options{})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("Import(a FIFO) = %v; want not a regular file", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Import(a FIFO) still blocked after 30s")
	}
}
