package topology

import (
	"net"
	"strings"
	"testing"

	"github.com/pires/go-proxyproto"
)

// The topology test's verdict on the captures and the L4 metrics rests on
// these functions; they run everywhere, root or not, so that a checker that
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

func TestStripProxyHeader(t *testing.T) {
	const tlsStart = "\x16\x03\x01\x00\x05hello"
	header := func(version byte, src string) string {
		h := &proxyproto.Header{
			Version:           version,
			Command:           proxyproto.PROXY,
			TransportProtocol: proxyproto.TCPv4,
			SourceAddr:        &net.TCPAddr{IP: net.ParseIP(src), Port: 40000},
			DestinationAddr:   &net.TCPAddr{IP: net.ParseIP(lbAddr), Port: 8444},
		}
		b, err := h.Format()
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	tests := []struct {
		desc    string
		stream  string
		want    string
		wantErr string
	}{
		{desc: "v2 from the partner, then TLS", stream: header(2, partnerAddr) + tlsStart, want: tlsStart},
		{desc: "v1 header", stream: header(1, partnerAddr) + tlsStart, wantErr: "version 1, want 2"},
		{desc: "another source", stream: header(2, edgeLBSide) + tlsStart, wantErr: "want the partner's address"},
		{desc: "no header, TLS at once", stream: tlsStart, wantErr: "no PROXY protocol header"},
		{desc: "empty", stream: "", wantErr: "no PROXY protocol header"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := stripProxyHeader([]byte(tc.stream))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("stripProxyHeader(): got %q, %v; want an error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Errorf("stripProxyHeader(): got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP drawbridge_l4_connections_total Closed connections.
# TYPE drawbridge_l4_connections_total counter
drawbridge_l4_connections_total{listener="nlb",result="no_route",upstream=""} 1
drawbridge_l4_connections_total{listener="nlb",result="ok",upstream="onprem-tcp"} 2
drawbridge_l4_connections_total{listener="nlb-tls",result="ok",upstream="onprem-pp"} 3
drawbridge_build_info{version="dev"} 1
go_goroutines 12
`
	samples := parseMetrics(text)
	if len(samples) != 5 {
		t.Fatalf("parsed %d samples, want 5: %+v", len(samples), samples)
	}
	for _, c := range []struct {
		name string
		want map[string]string
		sum  float64
	}{
		{"drawbridge_l4_connections_total", map[string]string{"listener": "nlb"}, 3},
		{"drawbridge_l4_connections_total", map[string]string{"listener": "nlb", "upstream": ""}, 1},
		{"drawbridge_l4_connections_total", nil, 6},
		{"drawbridge_l4_connections_total", map[string]string{"listener": "other"}, 0},
		{"go_goroutines", nil, 12},
	} {
		if got := metricValue(samples, c.name, c.want); got != c.sum {
			t.Errorf("metricValue(%s, %v) = %v, want %v", c.name, c.want, got, c.sum)
		}
	}
}
