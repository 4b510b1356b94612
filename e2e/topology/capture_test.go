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
		"-i", iface, "-n", "-s", "0", "--immediate-mode", "-U", "-Z", "root", "-w", c.file)
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
		data, _, err := r.ReadPacketData()
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

// checkTLSRecords reports whether b is a sequence of whole TLS records
// (RFC 8446 §5.1: type, legacy version 0x03xx, 16-bit length) whose first
// is a handshake record (0x16): a TLS connection from its first byte.
// Anything else, such as "GET /" or "HTTP/1.1", fails at the first record.
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
		if len(b)-pos < headerLen {
			return fmt.Errorf("record %d at offset %d: %d bytes left, less than a record header", records+1, pos, len(b)-pos)
		}
		typ, major, minor := b[pos], b[pos+1], b[pos+2]
		length := int(binary.BigEndian.Uint16(b[pos+3:]))
		if typ < changeCipherSpec || typ > applicationData {
			return fmt.Errorf("record %d at offset %d: type 0x%02x is not a TLS record type; bytes %q", records+1, pos, typ, preview(b[pos:]))
		}
		if major != 3 || minor > 4 {
			return fmt.Errorf("record %d at offset %d: version 0x%02x%02x is not 0x03xx", records+1, pos, major, minor)
		}
		if length > maxRecordLen {
			return fmt.Errorf("record %d at offset %d: length %d is over TLS's maximum", records+1, pos, length)
		}
		pos += headerLen + length
		if pos > len(b) {
			return fmt.Errorf("record %d is cut short: the capture ends %d bytes before its end", records+1, pos-len(b))
		}
		records++
	}
	return nil
}

func preview(b []byte) []byte {
	return b[:min(len(b), 16)]
}
