package topology

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// capture is tcpdump writing one link's packets to a pcap file.
type capture struct {
	link string // e.g. "edge:to-partner"
	file string
	p    *proc
}

// startCapture runs tcpdump on iface inside the role's namespace.
// --immediate-mode hands each packet to tcpdump as it arrives (not in
// blocks every second) and -U writes it at once, -s 0 keeps whole packets
// (the marker search needs every payload byte), -Z root keeps tcpdump from
// dropping to a user that could not write into the test's private folder.
func startCapture(t *testing.T, tp *topology, dir, role, iface string) *capture {
	t.Helper()
	c := &capture{link: role + ":" + iface, file: filepath.Join(dir, fmt.Sprintf("%s-%s.pcap", role, iface))}
	c.p = startIn(t, tp.nsName(role), "tcpdump "+c.link, dir, "tcpdump",
		// A 64 MiB kernel buffer: on a loaded CI machine tcpdump can fall
		// behind a burst (the app-kill stream) and the default 2 MiB
		// overflowed, dropping packets the check then cannot vouch for.
		"-i", iface, "-n", "-s", "0", "-B", "65536", "--immediate-mode", "-U", "-Z", "root", "-w", c.file)
	// tcpdump says "listening on IFACE" once the capture is running.
	c.p.waitOutput(t, "listening on "+iface, 10*time.Second)
	return c
}

// stop ends tcpdump with SIGINT, which flushes and closes the pcap file,
// once the file has stopped growing, and checks that tcpdump wrote every
// packet the kernel handed it: a capture missing the run's last packets
// could otherwise pass for clean.
func (c *capture) stop(t *testing.T) {
	t.Helper()
	var size int64 = -1
	stable := 0
	waitUntil(t, "the capture on "+c.link+" to settle", 10*time.Second, func() bool {
		fi, err := os.Stat(c.file)
		if err != nil {
			t.Fatalf("capture on %s: %v", c.link, err)
		}
		if fi.Size() == size {
			stable++
		} else {
			size, stable = fi.Size(), 0
		}
		return stable >= 3
	})
	if err := c.p.signal(syscall.SIGINT); err != nil && !c.p.exited() {
		t.Fatalf("stopping tcpdump on %s: %v", c.link, err)
	}
	select {
	case <-c.p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("tcpdump on %s did not stop within 10s:\n%s", c.link, c.p.out.String())
	}
	out := c.p.out.String()
	captured, received := tcpdumpCount(out, "packets captured"), tcpdumpCount(out, "packets received by filter")
	if captured < 0 || received < 0 || captured < received {
		t.Fatalf("tcpdump on %s did not write every packet it received:\n%s", c.link, out)
	}
}

// tcpdumpCount finds "N what" in tcpdump's closing statistics; -1 if absent.
func tcpdumpCount(out, what string) int {
	m := regexp.MustCompile(`(?m)^(\d+) ` + regexp.QuoteMeta(what) + `$`).FindStringSubmatch(out)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// flowKey names one direction of a TCP connection.
type flowKey struct {
	src, dst string // ip:port
}

func (k flowKey) String() string { return k.src + " → " + k.dst }

// reverse is the other direction of the same connection.
func (k flowKey) reverse() flowKey { return flowKey{src: k.dst, dst: k.src} }

// segment is one captured TCP segment's payload at its sequence number.
type segment struct {
	seq     uint32
	payload []byte
}

// flow is one direction of a TCP connection as captured.
type flow struct {
	synSeen bool
	isn     uint32 // the SYN's sequence number, when synSeen
	segs    []segment
	// endSeq is the sequence number just past the last byte this side
	// sent, as its first FIN or RST says; ended tells whether there was
	// one, and reset whether it was an RST.
	ended, reset bool
	endSeq       uint32
	// endTime is when the FIN or RST was captured, last when any packet
	// of this direction was.
	endTime, last time.Time
}

// endedAt reports whether this side closed or reset the connection right
// after its n-th byte: the capture has every byte it sent, and no more
// were coming.
func (fl *flow) endedAt(n int) bool {
	return fl.synSeen && fl.ended && fl.endSeq-fl.isn-1 == uint32(n)
}

// captureSummary is what one pcap holds.
type captureSummary struct {
	packets int
	flows   map[flowKey]*flow
	// markerIn lists the packets (1-based numbers, as Wireshark counts)
	// whose bytes contain the marker.
	markerIn []int
}

// readCapture decodes a pcap file: every packet is searched for marker
// as raw bytes (whatever its protocol), and TCP payloads are grouped by
// direction for reassembly.
func readCapture(file string, marker []byte) (*captureSummary, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	s := &captureSummary{flows: map[flowKey]*flow{}}
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s after %d packets: %w", file, s.packets, err)
		}
		s.packets++
		if bytes.Contains(data, marker) {
			s.markerIn = append(s.markerIn, s.packets)
		}
		pkt := gopacket.NewPacket(data, r.LinkType(), gopacket.DecodeOptions{Lazy: true, NoCopy: true})
		tcp, ok := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if !ok || pkt.NetworkLayer() == nil {
			continue
		}
		ips := pkt.NetworkLayer().NetworkFlow()
		key := flowKey{
			src: fmt.Sprintf("%s:%d", ips.Src(), tcp.SrcPort),
			dst: fmt.Sprintf("%s:%d", ips.Dst(), tcp.DstPort),
		}
		fl := s.flows[key]
		if fl == nil {
			fl = &flow{}
			s.flows[key] = fl
		}
		if tcp.SYN {
			fl.synSeen, fl.isn = true, tcp.Seq
		}
		fl.last = ci.Timestamp
		if (tcp.FIN || tcp.RST) && !fl.ended {
			// A FIN takes the sequence number after the segment's
			// payload; an RST carries the sender's next one.
			fl.ended, fl.reset, fl.endTime = true, tcp.RST, ci.Timestamp
			fl.endSeq = tcp.Seq + uint32(len(tcp.Payload))
		}
		if len(tcp.Payload) > 0 {
			fl.segs = append(fl.segs, segment{seq: tcp.Seq, payload: bytes.Clone(tcp.Payload)})
		}
	}
	return s, nil
}

// reassemble returns the flow's bytes in sequence order, with
// retransmissions dropped. It fails on a hole (a segment the capture
// missed), since the bytes after it cannot be checked.
func (fl *flow) reassemble() ([]byte, error) {
	if !fl.synSeen {
		return nil, errors.New("the connection's SYN is not in the capture, so its first bytes are not either")
	}
	segs := slices.Clone(fl.segs)
	// Offsets from the ISN, in uint32 arithmetic, survive wrap-around.
	rel := func(s segment) uint32 { return s.seq - fl.isn - 1 }
	slices.SortStableFunc(segs, func(a, b segment) int { return int(int64(rel(a)) - int64(rel(b))) })
	var out []byte
	for _, s := range segs {
		off := int(rel(s))
		switch {
		case off > len(out):
			return nil, fmt.Errorf("%d bytes missing from the capture at offset %d", off-len(out), len(out))
		case off+len(s.payload) <= len(out):
			continue // a retransmission of bytes already placed
		default:
			out = append(out, s.payload[len(out)-off:]...)
		}
	}
	return out, nil
}

// errLastRecordCut is checkTLSRecords' verdict on a stream that is TLS
// records from its first byte to its last, except that the last record
// stops before its end: what the sender had written of it, or of its
// header, is valid TLS as far as it goes, and the rest never came.
var errLastRecordCut = errors.New("the last record is cut short")

// checkTLSRecords reports whether b is a sequence of whole TLS records
// (RFC 8446 §5.1: type, legacy version 0x03xx, 16-bit length) whose first
// is a handshake record (0x16): a TLS connection from its first byte.
// Anything else, such as "GET /" or "HTTP/1.1", fails at the first record.
// A stream whose last record (or the header of it) is cut short, with
// every byte present valid TLS, fails with an error wrapping
// errLastRecordCut, which the caller may accept for a connection that was
// cut (see checkStream); any other flaw fails as such.
func checkTLSRecords(b []byte) error {
	const (
		changeCipherSpec = 20
		alert            = 21
		handshake        = 22
		applicationData  = 23
		headerLen        = 5
		// A record's ciphertext is at most 2^14 + 256 bytes (TLS 1.3)
		// or 2^14 + 2048 (TLS 1.2).
		maxRecordLen = 1<<14 + 2048
	)
	if len(b) == 0 {
		return errors.New("no payload")
	}
	if b[0] != handshake {
		return fmt.Errorf("first byte is 0x%02x, not a TLS handshake record (0x16); starts %q", b[0], preview(b))
	}
	records := 0
	for pos := 0; pos < len(b); {
		// The header's bytes are checked as far as they go, so that a
		// stream ending inside a header is cut TLS only if the part
		// present is a TLS header's beginning.
		h := b[pos:min(pos+headerLen, len(b))]
		if typ := h[0]; typ < changeCipherSpec || typ > applicationData {
			return fmt.Errorf("record %d at offset %d: type 0x%02x is not a TLS record type; bytes %q", records+1, pos, typ, preview(b[pos:]))
		}
		if len(h) >= 2 && h[1] != 3 || len(h) >= 3 && h[2] > 4 {
			return fmt.Errorf("record %d at offset %d: version 0x%x is not 0x03xx", records+1, pos, h[1:min(3, len(h))])
		}
		if len(h) < headerLen {
			return fmt.Errorf("record %d at offset %d: %d bytes left, less than a record header: %w", records+1, pos, len(h), errLastRecordCut)
		}
		length := int(binary.BigEndian.Uint16(h[3:]))
		if length > maxRecordLen {
			return fmt.Errorf("record %d at offset %d: length %d is over TLS's maximum", records+1, pos, length)
		}
		pos += headerLen + length
		if pos > len(b) {
			return fmt.Errorf("record %d is cut short: the capture ends %d bytes before its end: %w", records+1, pos-len(b), errLastRecordCut)
		}
		records++
	}
	return nil
}

func preview(b []byte) []byte {
	return b[:min(len(b), 16)]
}

// checkStream checks one direction of a captured connection that carried
// data: its bytes, reassembled, must not contain the marker, and must be
// TLS records from the first byte (from the byte after a PROXY v2 header
// naming the partner, when proxyHeader). cut reports a stream accepted
// with its last record cut short.
//
// A connection cut in the middle of a record is not a leak: the app kill
// closes app1's connections whatever they were sending, and a refused
// handshake (the rogue certificate) ends with an alert and a close while
// the other side may still be writing. Such a stream is accepted only when
// the connection did end there: this side's FIN or RST comes right after
// the last byte captured (it sent nothing more), or the other side reset
// the connection (its kernel then drops whatever this side had not yet
// sent). Every byte that is there has been checked as TLS all the same, so
// a cleartext byte, even in the cut record's header, still fails, and so
// does a cut record in a stream that went on (bytes the capture missed).
func (s *captureSummary) checkStream(key flowKey, marker []byte, proxyHeader bool) (cut bool, err error) {
	fl := s.flows[key]
	stream, err := fl.reassemble()
	if err != nil {
		return false, err
	}
	if bytes.Contains(stream, marker) {
		return false, errors.New("the marker is in the stream in cleartext")
	}
	sent := len(stream)
	if proxyHeader {
		if stream, err = stripProxyHeader(stream); err != nil {
			return false, err
		}
	}
	err = checkTLSRecords(stream)
	if !errors.Is(err, errLastRecordCut) {
		if err != nil {
			return false, fmt.Errorf("%d bytes, not TLS: %w", sent, err)
		}
		return false, nil
	}
	if peer := s.flows[key.reverse()]; fl.endedAt(sent) || peer != nil && peer.reset {
		return true, nil
	}
	return false, fmt.Errorf("%d bytes: %w, yet the connection did not end there (no FIN or RST right after it, no reset from the other side)", sent, err)
}
