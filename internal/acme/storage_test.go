package acme_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/drawbridge-gw/drawbridge/internal/acme"
)

// TestCheckStorage: validate refuses a storage folder that cannot be
// created or written, and creates nothing itself.
func TestCheckStorage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	readOnly := filepath.Join(dir, "ro")
	if err := os.Mkdir(readOnly, 0o500); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		// Root writes any folder whatever its mode; a read-only mount is
		// what stops root, so the folder gets one.
		if err := unix.Mount("tmpfs", readOnly, "tmpfs", unix.MS_RDONLY, "size=1m"); err != nil {
			t.Fatalf("mounting a read-only tmpfs on %s (as root): %v", readOnly, err)
		}
		t.Cleanup(func() { unix.Unmount(readOnly, unix.MNT_DETACH) })
	}
	for _, tc := range []struct {
		desc    string
		storage string
		want    string // "" for no error
	}{
		{desc: "existing folder", storage: dir},
		{desc: "missing folders under a writable one", storage: filepath.Join(dir, "a", "b", "acme")},
		{desc: "a file", storage: file, want: "is not a folder"},
		{desc: "under a file", storage: filepath.Join(file, "acme"), want: file + " is not a folder"},
		{desc: "read-only folder", storage: readOnly, want: "cannot be written"},
		{desc: "under a read-only folder", storage: filepath.Join(readOnly, "acme"), want: "cannot be created: " + readOnly + " is not writable"},
		{desc: "empty", storage: "", want: "storage folder is required"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			err := acme.CheckStorage(tc.storage)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("CheckStorage(%q): %v, want nil", tc.storage, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("CheckStorage(%q): got %v, want %q", tc.storage, err, tc.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); !os.IsNotExist(err) {
		t.Errorf("CheckStorage created a folder (stat: %v)", err)
	}
}
