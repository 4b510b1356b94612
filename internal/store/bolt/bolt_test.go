package bolt

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/drawbridge-gw/drawbridge/internal/store"
	"github.com/drawbridge-gw/drawbridge/internal/store/storetest"
)

var (
	ctx   = context.Background()
	day   = time.Date(2026, 5, 17, 12, 0, 0, 0, time.UTC)
	month = store.Window{
		Start: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC),
		End:   time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC),
		Limit: 100,
	}
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(filepath.Join(t.TempDir(), "drawbridge.db"), Options{})
		if err != nil {
			t.Fatalf("Open(): got %v, want nil", err)
		}
		return s
	})
}

func mustOpen(t *testing.T, path string, o Options) *Store {
	t.Helper()
	s, err := Open(path, o)
	if err != nil {
		t.Fatalf("Open(%q): got %v, want nil", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func consume(t *testing.T, s *Store, n int, w *store.Window) (allowed int) {
	t.Helper()
	for range n {
		d, err := s.Consume(ctx, "key_a", w, day)
		if err != nil {
			t.Fatalf("Consume(key_a): got %v, want nil", err)
		}
		if d.Allowed {
			allowed++
		}
	}
	return allowed
}

// checkCounts fails unless s holds want in key_a's month and usage for day.
func checkCounts(t *testing.T, s store.Store, want int64) {
	t.Helper()
	if n, err := s.QuotaUsed(ctx, "key_a", month); err != nil || n != want {
		t.Errorf("QuotaUsed(key_a, May): got %d, %v, want %d, nil", n, err, want)
	}
	wantU := map[string]int64{}
	if want != 0 {
		wantU["2026-05-17"] = want
	}
	if u, err := s.Usage(ctx, "key_a", day, day); err != nil || !maps.Equal(u, wantU) {
		t.Errorf("Usage(key_a, 2026-05-17): got %v, %v, want %v, nil", u, err, wantU)
	}
}

func TestReopenContinuesCounts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "drawbridge.db")
	s := mustOpen(t, path, Options{FlushInterval: time.Hour})
	consume(t, s, 37, &month)
	if err := s.Close(); err != nil {
		t.Fatalf("Close(): got %v, want nil", err)
	}
	s = mustOpen(t, path, Options{})
	checkCounts(t, s, 37)
}

func TestQuotaAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "drawbridge.db")
	w := month
	w.Limit = 10
	s := mustOpen(t, path, Options{FlushInterval: time.Hour})
	allowed := consume(t, s, 6, &w)
	if err := s.Close(); err != nil {
		t.Fatalf("Close(): got %v, want nil", err)
	}
	s = mustOpen(t, path, Options{FlushInterval: time.Hour})
	allowed += consume(t, s, 10, &w)
	if allowed != 10 {
		t.Errorf("Consume(key_a) 6 times, restart, 10 times with limit 10: got %d allowed, want 10", allowed)
	}
}

// snapshot copies the live file as a kill -9 at this moment would leave
// it, and opens the copy: the lock keeps a second handle off the original.
func snapshot(t *testing.T, s *Store) *Store {
	t.Helper()
	path := filepath.Join(t.TempDir(), "copy.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	err = s.db.View(func(tx *bbolt.Tx) error {
		_, err := tx.WriteTo(f)
		return err
	})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("copying %q: %v", s.path, err)
	}
	return mustOpen(t, path, Options{FlushInterval: time.Hour})
}

func TestKeysAndPlansDurableAtOnce(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "drawbridge.db"), Options{FlushInterval: time.Hour})
	k := store.Key{ID: "key_a", Name: "acme", Hash: strings.Repeat("ab", 32), Enabled: true}
	if err := s.CreateKey(ctx, k); err != nil {
		t.Fatalf("CreateKey(acme): got %v, want nil", err)
	}
	if err := s.PutPlan(ctx, store.Plan{Name: "gold"}); err != nil {
		t.Fatalf("PutPlan(gold): got %v, want nil", err)
	}
	c := snapshot(t, s)
	if got, err := c.KeyByHash(ctx, k.Hash); err != nil || got.Name != "acme" {
		t.Errorf("KeyByHash() on a copy taken right after CreateKey: got %+v, %v, want acme", got, err)
	}
	if _, err := c.Plan(ctx, "gold"); err != nil {
		t.Errorf("Plan(gold) on a copy taken right after PutPlan: got %v, want nil", err)
	}
}

func TestCountersFlushedWithinInterval(t *testing.T) {
	// With an hour-long interval nothing is flushed yet: a crash now would
	// lose these counts, which is the documented window.
	s := mustOpen(t, filepath.Join(t.TempDir(), "slow.db"), Options{FlushInterval: time.Hour})
	consume(t, s, 37, &month)
	checkCounts(t, snapshot(t, s), 0)

	s = mustOpen(t, filepath.Join(t.TempDir(), "fast.db"), Options{FlushInterval: 20 * time.Millisecond})
	consume(t, s, 37, &month)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := snapshot(t, s)
		n, _ := c.QuotaUsed(ctx, "key_a", month)
		if n == 37 {
			checkCounts(t, c, 37)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("QuotaUsed(key_a) on copies of a store flushing every 20ms: still %d after 10s, want 37", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFailedFlushKeepsCounts(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "drawbridge.db"), Options{FlushInterval: time.Hour})
	errDisk := errors.New("disk on fire")
	fail := func(*bbolt.Tx) error { return errDisk }
	s.flushHook.Store(&fail)
	consume(t, s, 5, &month)
	if err := s.flush(); !errors.Is(err, errDisk) {
		t.Fatalf("flush() with a failing transaction: got %v, want %v", err, errDisk)
	}
	checkCounts(t, s, 5)
	s.flushHook.Store(nil)
	consume(t, s, 1, &month)
	if err := s.flush(); err != nil {
		t.Fatalf("flush(): got %v, want nil", err)
	}
	checkCounts(t, snapshot(t, s), 6)
}

// syncBuffer is a bytes.Buffer safe for the flusher goroutine's logging.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestFlushErrorLoggedAndRetried(t *testing.T) {
	var logs syncBuffer
	path := filepath.Join(t.TempDir(), "drawbridge.db")
	s, err := Open(path, Options{FlushInterval: 10 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("Open(): got %v, want nil", err)
	}
	fail := func(*bbolt.Tx) error { return errors.New("disk on fire") }
	s.flushHook.Store(&fail)
	consume(t, s, 3, &month)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "disk on fire") {
		if time.Now().After(deadline) {
			t.Fatalf("log after failing flushes: got %q, want the flush error", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.flushHook.Store(nil)
	if err := s.Close(); err != nil {
		t.Fatalf("Close(): got %v, want nil", err)
	}
	checkCounts(t, mustOpen(t, path, Options{}), 3)
}

func TestLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "drawbridge.db")
	mustOpen(t, path, Options{})
	s, err := Open(path, Options{})
	if err == nil {
		s.Close()
		t.Fatalf("Open(%q) while open elsewhere: got nil error, want locked", path)
	}
	want := `store "` + path + `" is locked by another drawbridge process; stop it or use the admin API`
	if err.Error() != want {
		t.Errorf("Open(%q) while open elsewhere: got %q, want %q", path, err, want)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	newer := filepath.Join(dir, "newer.db")
	badCounter := filepath.Join(dir, "badcounter.db")
	for path, fill := range map[string]func(*bbolt.Tx) error{
		newer: func(tx *bbolt.Tx) error {
			b, err := tx.CreateBucket(bucketMeta)
			if err != nil {
				return err
			}
			return b.Put(metaSchema, encodeCount(2))
		},
		badCounter: func(tx *bbolt.Tx) error {
			b, err := tx.CreateBucket(bucketQuota)
			if err != nil {
				return err
			}
			return b.Put([]byte("key_a|2026-05-01T00:00:00Z"), []byte("x"))
		},
	} {
		db, err := bbolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(fill); err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
	tests := []struct {
		desc, path, want string
	}{
		{"newer schema", newer, "schema version is 2"},
		{"malformed counter", badCounter, "counter is 1 bytes"},
		{"missing directory", filepath.Join(dir, "no", "such.db"), "opening store"},
		{"not a bolt file", writeFile(t, filepath.Join(dir, "junk.db"), strings.Repeat("junk", 2048)), "opening store"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			s, err := Open(tt.path, Options{})
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q): got nil error, want %q", tt.path, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.path) {
				t.Errorf("Open(%q): got %q, want it to contain %q and the path", tt.path, err, tt.want)
			}
		})
	}
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCloseTwiceAndConsumeAfterClose(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "drawbridge.db"), Options{})
	if err := s.Close(); err != nil {
		t.Fatalf("Close(): got %v, want nil", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close() again: got %v, want nil", err)
	}
	if _, err := s.Consume(ctx, "key_a", nil, day); err == nil {
		t.Errorf("Consume() after Close: got nil error, want closed")
	}
	if _, err := s.KeyByName(ctx, "acme"); err == nil {
		t.Errorf("KeyByName() after Close: got nil error, want closed")
	}
}

func TestAllowUsesInjectedClock(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s := mustOpen(t, filepath.Join(t.TempDir(), "drawbridge.db"), Options{Now: func() time.Time { return now }})
	th := store.Throttle{Rate: 1, Burst: 2}
	for i, want := range []bool{true, true, false} {
		if d, _ := s.Allow(ctx, "b", th); d.Allowed != want {
			t.Errorf("Allow(b) #%d at a frozen clock: got %+v, want Allowed %v", i+1, d, want)
		}
	}
	now = now.Add(time.Second)
	if d, _ := s.Allow(ctx, "b", th); !d.Allowed {
		t.Errorf("Allow(b) one second later: got %+v, want allowed", d)
	}
}

// TestConsumeRacingClose checks that every Consume that succeeds is in the
// file, however it interleaves with Close: a count that landed after the
// final flush would be lost.
func TestConsumeRacingClose(t *testing.T) {
	const (
		workers = 4
		rounds  = 20
		warmup  = 50 // successful Consumes per worker before Close starts
	)
	w := &store.Window{Start: month.Start, End: month.End, Limit: 1 << 40}
	for round := range rounds {
		path := filepath.Join(t.TempDir(), "drawbridge.db")
		s, err := Open(path, Options{FlushInterval: time.Millisecond})
		if err != nil {
			t.Fatalf("Open(%q): got %v, want nil", path, err)
		}
		var (
			wg     sync.WaitGroup
			ready  sync.WaitGroup
			counts [workers]int64
		)
		ready.Add(workers)
		for i := range workers {
			wg.Go(func() {
				id := "key_" + string(rune('a'+i))
				for n := 0; ; n++ {
					if n == warmup {
						ready.Done()
					}
					d, err := s.Consume(ctx, id, w, day)
					if err != nil {
						if n < warmup {
							ready.Done()
						}
						return
					}
					if !d.Allowed {
						t.Errorf("Consume(%s) #%d: got refused, want allowed under a limit of %d", id, n+1, w.Limit)
					}
					counts[i]++
				}
			})
		}
		ready.Wait()
		if err := s.Close(); err != nil {
			t.Fatalf("round %d: Close(): got %v, want nil", round, err)
		}
		wg.Wait()

		s = mustOpen(t, path, Options{FlushInterval: time.Hour})
		for i, want := range counts {
			id := "key_" + string(rune('a'+i))
			if got, err := s.QuotaUsed(ctx, id, *w); err != nil || got != want {
				t.Errorf("round %d: QuotaUsed(%s) after reopening: got %d, %v, want %d successful Consumes, nil", round, id, got, err, want)
			}
			u, err := s.Usage(ctx, id, day, day)
			if got := u["2026-05-17"]; err != nil || got != want {
				t.Errorf("round %d: Usage(%s) after reopening: got %d, %v, want %d successful Consumes, nil", round, id, got, err, want)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatalf("round %d: Close() of the reopened store: got %v, want nil", round, err)
		}
	}
}

// TestCloseWaitsForConsume holds a Consume between its closed check and its
// count while Close runs: the count must still reach the file.
func TestCloseWaitsForConsume(t *testing.T) {
	path := filepath.Join(t.TempDir(), "drawbridge.db")
	s, err := Open(path, Options{FlushInterval: time.Hour})
	if err != nil {
		t.Fatalf("Open(%q): got %v, want nil", path, err)
	}
	inside, release := make(chan struct{}), make(chan struct{})
	hook := func() {
		close(inside)
		<-release
	}
	s.consumeHook.Store(&hook)
	consumed := make(chan error)
	go func() {
		_, err := s.Consume(ctx, "key_a", &month, day)
		consumed <- err
	}()
	<-inside
	closed := make(chan error)
	go func() { closed <- s.Close() }()
	// Give Close the chance to finish early, which only a Close that does
	// not wait for Consume would take.
	select {
	case err := <-closed:
		close(release)
		<-consumed
		t.Fatalf("Close() while a Consume was counting: returned (%v) before the Consume finished", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-consumed; err != nil {
		t.Fatalf("Consume(key_a) started before Close: got %v, want nil", err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close(): got %v, want nil", err)
	}
	checkCounts(t, mustOpen(t, path, Options{}), 1)
}
