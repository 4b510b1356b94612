package topology

import (
	"errors"
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
		// wantCut: the error wraps errLastRecordCut, which a connection
		// cut by FIN or RST may be forgiven; nothing else may be.
		wantCut bool
	}{
		{desc: "handshake then application data", stream: record(22, 1, "hello") + record(20, 3, "\x01") + record(23, 3, "secret")},
		{desc: "TLS 1.3 alert after handshake", stream: record(22, 1, "hello") + record(21, 3, "\x01\x00")},
		{desc: "plaintext HTTP request", stream: "GET /orders/42 HTTP/1.1\r\nHost: x\r\n\r\n", wantErr: "not a TLS handshake record"},
		{desc: "plaintext HTTP answer", stream: "HTTP/1.1 200 OK\r\n\r\n", wantErr: "not a TLS handshake record"},
		{desc: "starts with application data", stream: record(23, 3, "data"), wantErr: "not a TLS handshake record"},
		{desc: "cleartext after the handshake", stream: record(22, 1, "hello") + "GET / HTTP/1.1\r\n", wantErr: "not a TLS record type"},
		{desc: "SSL 2 style version", stream: record(22, 1, "hello") + string([]byte{23, 2, 0, 0, 1}) + "x", wantErr: "not 0x03xx"},
		{desc: "record cut short", stream: record(22, 1, "hello")[:7], wantErr: "cut short", wantCut: true},
		{desc: "last record cut short", stream: record(22, 1, "hello") + record(23, 3, "secret")[:8], wantErr: "cut short", wantCut: true},
		{desc: "half a header left", stream: record(22, 1, "hello") + "\x17\x03", wantErr: "less than a record header", wantCut: true},
		{desc: "one header byte left", stream: record(22, 1, "hello") + "\x15", wantErr: "less than a record header", wantCut: true},
		// A cut stream passes only if every byte it has is TLS.
		{desc: "one cleartext byte after the records", stream: record(22, 1, "hello") + "G", wantErr: "not a TLS record type"},
		{desc: "cleartext cut short", stream: record(22, 1, "hello") + "GE", wantErr: "not a TLS record type"},
		{desc: "cut header with a wrong version", stream: record(22, 1, "hello") + "\x17\x01", wantErr: "not 0x03xx"},
		{desc: "cut header with a wrong minor version", stream: record(22, 1, "hello") + "\x17\x03\x09", wantErr: "not 0x03xx"},
		{desc: "oversized last record", stream: record(22, 1, "hello") + "\x17\x03\x03\xff\xff", wantErr: "over TLS's maximum"},
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
			case errors.Is(err, errLastRecordCut) != tc.wantCut:
				t.Errorf("checkTLSRecords(%q): got %v, errLastRecordCut %v, want %v", tc.stream, err, errors.Is(err, errLastRecordCut), tc.wantCut)
			}
		})
	}
}

// TestCheckStream: a stream cut inside its last TLS record is accepted
// only when the connection ended right there (this side's FIN or RST
// after its last captured byte, or a reset from the other side); a
// marker or a cleartext byte fails whatever the ending.
func TestCheckStream(t *testing.T) {
	const isn, peerISN = 1000, 5000
	const marker = "drawbridge-marker-test"
	whole := tlsRecord(22, "hello") + tlsRecord(23, "secret")
	cut := whole[:len(whole)-3]
	key := flowKey{src: edgeLBSide + ":40000", dst: lbAddr + ":443"}
	// side is one direction's flow carrying stream, ending (FIN or RST)
	// at offset end when end >= 0.
	side := func(stream string, end int, rst bool) *flow {
		fl := &flow{synSeen: true, isn: isn, segs: []segment{{seq: isn + 1, payload: []byte(stream)}}}
		if end >= 0 {
			fl.ended, fl.reset, fl.endSeq = true, rst, isn+1+uint32(end)
		}
		return fl
	}
	peer := func(rst bool) *flow {
		fl := &flow{synSeen: true, isn: peerISN}
		fl.ended, fl.reset, fl.endSeq = true, rst, peerISN+1
		return fl
	}
	tests := []struct {
		desc    string
		fl      *flow
		peer    *flow
		wantCut bool
		wantErr string
	}{
		{desc: "whole records, open", fl: side(whole, -1, false)},
		{desc: "whole records, FIN", fl: side(whole, len(whole), false)},
		{desc: "cut, FIN right after", fl: side(cut, len(cut), false), wantCut: true},
		{desc: "cut, RST right after", fl: side(cut, len(cut), true), wantCut: true},
		{desc: "cut, peer reset", fl: side(cut, -1, false), peer: peer(true), wantCut: true},
		{desc: "cut, still open", fl: side(cut, -1, false), wantErr: "did not end there"},
		{desc: "cut, peer closed by FIN only", fl: side(cut, -1, false), peer: peer(false), wantErr: "did not end there"},
		// Bytes were sent after the cut, but the capture lacks them.
		{desc: "cut, FIN later than the last byte", fl: side(cut, len(whole), false), wantErr: "did not end there"},
		{desc: "cleartext, FIN", fl: side(tlsRecord(22, "hello")+"GET / HTTP/1.1\r\n", 100, false), wantErr: "not TLS"},
		{desc: "cleartext cut, peer reset", fl: side(tlsRecord(22, "hello")+"GE", -1, false), peer: peer(true), wantErr: "not TLS"},
		{desc: "marker inside a TLS record, RST", fl: side(tlsRecord(22, "hello")+tlsRecord(23, marker+"--")[:5+len(marker)], -1, true), wantErr: "marker"},
		{desc: "no SYN", fl: &flow{segs: []segment{{seq: 1, payload: []byte(whole)}}}, wantErr: "SYN"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			s := &captureSummary{flows: map[flowKey]*flow{key: tc.fl}}
			if tc.peer != nil {
				s.flows[key.reverse()] = tc.peer
			}
			gotCut, err := s.checkStream(key, []byte(marker), false)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("checkStream(): got cut %v, %v; want an error containing %q", gotCut, err, tc.wantErr)
				}
				return
			}
			if err != nil || gotCut != tc.wantCut {
				t.Errorf("checkStream(): got cut %v, %v; want cut %v, no error", gotCut, err, tc.wantCut)
			}
		})
	}
}

// tlsRecord is a TLS 1.2-versioned record of type typ carrying payload.
func tlsRecord(typ byte, payload string) string {
	return string([]byte{typ, 3, 3, byte(len(payload) >> 8), byte(len(payload))}) + payload
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
