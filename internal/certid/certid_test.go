package certid

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/drawbridge-gw/drawbridge/internal/testutil/certs"
)

func TestFingerprint(t *testing.T) {
	t.Parallel()
	c := certs.SelfSigned(t, certs.Options{CommonName: "acme client"})
	sum := sha256.Sum256(c.Cert.Raw)
	if got, want := Fingerprint(c.Cert), "sha256:"+hex.EncodeToString(sum[:]); got != want {
		t.Errorf("Fingerprint(cert): got %q, want %q", got, want)
	}
	if got := Fingerprint(nil); got != "" {
		t.Errorf("Fingerprint(nil): got %q, want \"\"", got)
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	const digits = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	want := "sha256:" + digits
	colons := func(h string) string {
		var pairs []string
		for i := 0; i < len(h); i += 2 {
			pairs = append(pairs, h[i:i+2])
		}
		return strings.Join(pairs, ":")
	}
	tests := []struct {
		desc    string
		in      string
		wantErr string // "" means Parse must return want
	}{
		{desc: "canonical", in: want},
		{desc: "upper case digits", in: "sha256:" + strings.ToUpper(digits)},
		{desc: "upper case prefix", in: "SHA256:" + digits},
		{desc: "openssl colons, upper case", in: "sha256:" + strings.ToUpper(colons(digits))},
		{desc: "openssl colons, lower case", in: "sha256:" + colons(digits)},
		{desc: "no prefix", in: digits, wantErr: "want sha256:"},
		{desc: "other hash", in: "sha1:" + digits[:40], wantErr: "want sha256:"},
		{desc: "empty", in: "", wantErr: "want sha256:"},
		{desc: "short", in: "sha256:" + digits[:62], wantErr: "got 62"},
		{desc: "long", in: "sha256:" + digits + "00", wantErr: "got 66"},
		{desc: "not hex", in: "sha256:" + strings.Repeat("zz", 32), wantErr: "invalid byte"},
		{desc: "stray colon", in: "sha256:" + digits[:2] + ":" + digits[2:], wantErr: "got 2 groups"},
		{desc: "uneven groups", in: "sha256:" + strings.Replace(colons(digits), "00:11", "0:011", 1), wantErr: "want 2 hex digits"},
		{desc: "trailing colon", in: "sha256:" + colons(digits) + ":", wantErr: "groups"},
		{desc: "inner space", in: "sha256: " + digits[1:], wantErr: "invalid byte"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			got, err := Parse(tc.in)
			if tc.wantErr == "" {
				if err != nil || got != want {
					t.Errorf("Parse(%q): got %q, %v, want %q, nil", tc.in, got, err, want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Parse(%q): got %q, %v, want an error containing %q", tc.in, got, err, tc.wantErr)
			}
		})
	}
}
