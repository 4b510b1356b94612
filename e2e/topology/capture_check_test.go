package topology

import (
	"strings"
	"testing"
)

// The topology test's verdict on the captures rests on these two
// functions; they run everywhere, root or not, so that a checker that
// passes everything cannot hide behind a skipped topology.

func TestCheckTLSRecords(t *testing.T) {
	record := func(typ byte, minor byte, payload string) string {
		return string([]byte{typ, 3, minor, byte(len(payload) >> 8), byte(len(payload))}) + payload
	}
	tests := []struct {
		desc    string
		stream  string
		wantErr string // "" for a TLS stream
	}{
		{desc: "handshake then application data", stream: record(22, 1, "hello") + record(20, 3, "\x01") + record(23, 3, "secret")},
		{desc: "TLS 1.3 alert after handshake", stream: record(22, 1, "hello") + record(21, 3, "\x01\x00")},
		{desc: "plaintext HTTP request", stream: "GET /orders/42 HTTP/1.1\r\nHost: x\r\n\r\n", wantErr: "not a TLS handshake record"},
		{desc: "plaintext HTTP answer", stream: "HTTP/1.1 200 OK\r\n\r\n", wantErr: "not a TLS handshake record"},
		{desc: "starts with application data", stream: record(23, 3, "data"), wantErr: "not a TLS handshake record"},
		{desc: "cleartext after the handshake", stream: record(22, 1, "hello") + "GET / HTTP/1.1\r\n", wantErr: "not a TLS record type"},
		{desc: "SSL 2 style version", stream: record(22, 1, "hello") + string([]byte{23, 2, 0, 0, 1}) + "x", wantErr: "not 0x03xx"},
		{desc: "record cut short", stream: record(22, 1, "hello")[:7], wantErr: "cut short"},
		{desc: "half a header left", stream: record(22, 1, "hello") + "\x17\x03", wantErr: "less than a record header"},
		{desc: "empty", stream: "", wantErr: "no payload"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			err := checkTLSRecords([]byte(tc.stream))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("checkTLSRecords(%q): got %v, want nil", tc.stream, err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("checkTLSRecords(%q): got %v, want an error containing %q", tc.stream, err, tc.wantErr)
			}
		})
	}
}

func TestReassemble(t *testing.T) {
	const isn = 0xffff_fff0 // sequence numbers wrap around inside the stream
	seg := func(off uint32, p string) segment { return segment{seq: isn + 1 + off, payload: []byte(p)} }
	tests := []struct {
		desc    string
		fl      flow
		want    string
		wantErr string
	}{
		{desc: "in order", fl: flow{synSeen: true, isn: isn, segs: []segment{seg(0, "abc"), seg(3, "def")}}, want: "abcdef"},
		{desc: "out of order across the wrap", fl: flow{synSeen: true, isn: isn, segs: []segment{seg(20, "uvw"), seg(0, "0123456789abcdefghij")}}, want: "0123456789abcdefghijuvw"},
		{desc: "retransmission dropped", fl: flow{synSeen: true, isn: isn, segs: []segment{seg(0, "abc"), seg(0, "abc"), seg(3, "def")}}, want: "abcdef"},
		{desc: "overlapping retransmission", fl: flow{synSeen: true, isn: isn, segs: []segment{seg(0, "abc"), seg(1, "bcde")}}, want: "abcde"},
		{desc: "hole", fl: flow{synSeen: true, isn: isn, segs: []segment{seg(0, "abc"), seg(5, "fgh")}}, wantErr: "2 bytes missing"},
		{desc: "no SYN", fl: flow{segs: []segment{seg(0, "abc")}}, wantErr: "SYN is not in the capture"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := tc.fl.reassemble()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("reassemble(): got %q, %v; want an error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Errorf("reassemble(): got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
