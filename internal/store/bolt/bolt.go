package bolt

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"

	"github.com/drawbridge-gw/drawbridge/internal/store"
	"github.com/drawbridge-gw/drawbridge/internal/store/internal/counters"
	"github.com/drawbridge-gw/drawbridge/internal/store/internal/gcra"
)

var (
	_ store.Store = (*Store)(nil)
	_ store.Meter = (*Store)(nil)
)

// DefaultFlushInterval is how often counters are written when
// Options.FlushInterval is zero.
const DefaultFlushInterval = time.Second

// schemaVersion is the layout described in the package comment; Open
// refuses files of any other version.
const schemaVersion = 1

// lockTimeout is how long Open waits for another process's file lock.
const lockTimeout = time.Second

var (
	bucketKeys      = []byte("keys")
	bucketKeyHashes = []byte("keyhashes")
	bucketPlans     = []byte("plans")
	bucketQuota     = []byte("quota")
	bucketUsage     = []byte("usage")
	bucketMeta      = []byte("meta")
	metaSchema      = []byte("schema")
)

// Options configures a Store. The zero Options is ready to use.
type Options struct {
	// FlushInterval is how often counters are written to disk, and so the
	// most counting a crash can lose. If zero or negative,
	// DefaultFlushInterval is used.
	FlushInterval time.Duration
	// Now is the clock of the throttle buckets. If nil, time.Now is used.
	Now func() time.Time
	// Logger receives flush errors. If nil, slog.Default() is used.
	Logger *slog.Logger
}

// Store is a store.Store in a bbolt file, safe for concurrent use.
type Store struct {
	db      *bbolt.DB
	path    string
	now     func() time.Time
	log     *slog.Logger
	buckets *gcra.Limiter
	counts  *counters.Counters

	flushMu sync.Mutex // one flush at a time, so a later snapshot lands last
	// flushHook, if set, runs first in each flush transaction; tests use
	// it to make a flush fail.
	flushHook atomic.Pointer[func(*bbolt.Tx) error]
	// consumeHook, if set, runs in Consume between the closed check and
	// the count; tests use it to hold a Consume there while Close runs.
	consumeHook atomic.Pointer[func()]

	// closeMu makes Consume's closed check and its count one step: Consume
	// holds it shared, Close takes it exclusively to set closed, so once
	// Close has set closed no count can land after the final flush.
	closeMu sync.RWMutex
	closed  bool // guarded by closeMu

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// Open opens or creates the store in the file at path, loads its counters
// and starts flushing them every o.FlushInterval.
func Open(path string, o Options) (*Store, error) {
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: lockTimeout})
	if errors.Is(err, bbolt.ErrTimeout) {
		return nil, fmt.Errorf("store %q is locked by another drawbridge process; stop it or use the admin API", path)
	}
	if err != nil {
		return nil, fmt.Errorf("opening store %q: %w", path, err)
	}
	s := &Store{
		db:      db,
		path:    path,
		now:     o.Now,
		log:     o.Logger,
		buckets: gcra.New(),
		counts:  counters.New(true),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if err := s.init(); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening store %q: %w", path, err)
	}
	go s.flushLoop(o.FlushInterval)
	return s, nil
}

// init creates the buckets of a new file, checks the schema of an old one
// and loads the counters.
func (s *Store) init() error {
	err := s.db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketKeys, bucketKeyHashes, bucketPlans, bucketQuota, bucketUsage, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("creating bucket %q: %w", b, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		v := meta.Get(metaSchema)
		if v == nil {
			return meta.Put(metaSchema, encodeCount(schemaVersion))
		}
		got, err := decodeCount(v)
		if err != nil {
			return fmt.Errorf("reading schema version: %w", err)
		}
		if got != schemaVersion {
			return fmt.Errorf("schema version is %d, this drawbridge reads version %d", got, schemaVersion)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return s.db.View(func(tx *bbolt.Tx) error {
		err := tx.Bucket(bucketQuota).ForEach(func(k, v []byte) error {
			n, err := decodeCount(v)
			if err != nil {
				return fmt.Errorf("loading quota counter %q: %w", k, err)
			}
			s.counts.SetQuota(string(k), n)
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketUsage).ForEach(func(k, v []byte) error {
			n, err := decodeCount(v)
			if err != nil {
				return fmt.Errorf("loading usage counter %q: %w", k, err)
			}
			id, day, ok := counters.SplitKey(string(k))
			if !ok {
				return fmt.Errorf("loading usage counter %q: no key ID separator", k)
			}
			s.counts.SetUsage(id, day, n)
			return nil
		})
	})
}

func encodeCount(n int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(n))
}

func decodeCount(v []byte) (int64, error) {
	if len(v) != 8 {
		return 0, fmt.Errorf("counter is %d bytes, want 8", len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}

// flushLoop writes the counters every interval until Close.
func (s *Store) flushLoop(interval time.Duration) {
	defer close(s.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if err := s.flush(); err != nil {
				// The counts stay dirty in memory; the next tick retries.
				s.log.Error("flushing store counters; will retry", "path", s.path, "err", err)
			}
		}
	}
}

// flush writes the counters changed since the last flush in one
// transaction. On failure they are marked dirty again, so none are lost.
func (s *Store) flush() error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	quota, usage := s.counts.TakeDirty()
	if len(quota)+len(usage) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		if hook := s.flushHook.Load(); hook != nil {
			if err := (*hook)(tx); err != nil {
				return err
			}
		}
		for _, set := range []struct {
			bucket  []byte
			entries []counters.Entry
		}{{bucketQuota, quota}, {bucketUsage, usage}} {
			b := tx.Bucket(set.bucket)
			for _, e := range set.entries {
				if err := b.Put([]byte(e.Key), encodeCount(e.N)); err != nil {
					return fmt.Errorf("writing counter %q: %w", e.Key, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		s.counts.MarkDirty(quota, usage)
		return fmt.Errorf("flushing %d counters to %q: %w", len(quota)+len(usage), s.path, err)
	}
	return nil
}

// Close implements store.Store: it stops the flusher, writes the counters
// one last time and closes the file. Calling it again returns the first
// call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closeMu.Lock()
		s.closed = true
		s.closeMu.Unlock()
		close(s.stop)
		<-s.done
		ferr := s.flush()
		cerr := s.db.Close()
		if cerr != nil {
			cerr = fmt.Errorf("closing store %q: %w", s.path, cerr)
		}
		s.closeErr = errors.Join(ferr, cerr)
	})
	return s.closeErr
}

// CreateKey implements store.Store.
func (s *Store) CreateKey(_ context.Context, k store.Key) error {
	if k.Name == "" || k.Hash == "" {
		return errors.New("creating key: name and hash must not be empty")
	}
	v, err := json.Marshal(k)
	if err != nil {
		return fmt.Errorf("key %q: encoding: %w", k.Name, err)
	}
	return s.db.Update(func(tx *bbolt.Tx) error {
		keys, hashes := tx.Bucket(bucketKeys), tx.Bucket(bucketKeyHashes)
		if keys.Get([]byte(k.Name)) != nil {
			return fmt.Errorf("key %q: %w", k.Name, store.ErrExists)
		}
		if hashes.Get([]byte(k.Hash)) != nil {
			return fmt.Errorf("key %q: value: %w", k.Name, store.ErrExists)
		}
		if err := keys.Put([]byte(k.Name), v); err != nil {
			return fmt.Errorf("key %q: writing: %w", k.Name, err)
		}
		if err := hashes.Put([]byte(k.Hash), []byte(k.Name)); err != nil {
			return fmt.Errorf("key %q: writing hash: %w", k.Name, err)
		}
		return nil
	})
}

// UpdateKey implements store.Store. The stored Hash is kept whatever
// k.Hash says, because lookups by the key's value must keep working.
func (s *Store) UpdateKey(_ context.Context, k store.Key) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		keys := tx.Bucket(bucketKeys)
		old, err := getKey(keys, k.Name)
		if err != nil {
			return err
		}
		k.Hash = old.Hash
		v, err := json.Marshal(k)
		if err != nil {
			return fmt.Errorf("key %q: encoding: %w", k.Name, err)
		}
		if err := keys.Put([]byte(k.Name), v); err != nil {
			return fmt.Errorf("key %q: writing: %w", k.Name, err)
		}
		return nil
	})
}

// getKey reads and decodes the key named name from the keys bucket.
func getKey(keys *bbolt.Bucket, name string) (store.Key, error) {
	v := keys.Get([]byte(name))
	if v == nil {
		return store.Key{}, fmt.Errorf("key %q: %w", name, store.ErrNotFound)
	}
	var k store.Key
	if err := json.Unmarshal(v, &k); err != nil {
		return store.Key{}, fmt.Errorf("key %q: decoding: %w", name, err)
	}
	return k, nil
}

// KeyByHash implements store.Store.
func (s *Store) KeyByHash(_ context.Context, hash string) (store.Key, error) {
	var k store.Key
	err := s.db.View(func(tx *bbolt.Tx) error {
		name := tx.Bucket(bucketKeyHashes).Get([]byte(hash))
		if name == nil {
			return fmt.Errorf("key with hash %.8s...: %w", hash, store.ErrNotFound)
		}
		var err error
		k, err = getKey(tx.Bucket(bucketKeys), string(name))
		return err
	})
	return k, err
}

// KeyByName implements store.Store.
func (s *Store) KeyByName(_ context.Context, name string) (store.Key, error) {
	var k store.Key
	err := s.db.View(func(tx *bbolt.Tx) error {
		var err error
		k, err = getKey(tx.Bucket(bucketKeys), name)
		return err
	})
	return k, err
}

// ListKeys implements store.Store; bbolt iterates in byte order, which is
// the sort order of names.
func (s *Store) ListKeys(context.Context) ([]store.Key, error) {
	var keys []store.Key
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketKeys).ForEach(func(name, v []byte) error {
			var k store.Key
			if err := json.Unmarshal(v, &k); err != nil {
				return fmt.Errorf("key %q: decoding: %w", name, err)
			}
			keys = append(keys, k)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("listing keys: %w", err)
	}
	return keys, nil
}

// PutPlan implements store.Store.
func (s *Store) PutPlan(_ context.Context, p store.Plan) error {
	if p.Name == "" {
		return errors.New("putting plan: name must not be empty")
	}
	v, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("plan %q: encoding: %w", p.Name, err)
	}
	err = s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketPlans).Put([]byte(p.Name), v)
	})
	if err != nil {
		return fmt.Errorf("plan %q: writing: %w", p.Name, err)
	}
	return nil
}

// Plan implements store.Store.
func (s *Store) Plan(_ context.Context, name string) (store.Plan, error) {
	var p store.Plan
	err := s.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketPlans).Get([]byte(name))
		if v == nil {
			return fmt.Errorf("plan %q: %w", name, store.ErrNotFound)
		}
		if err := json.Unmarshal(v, &p); err != nil {
			return fmt.Errorf("plan %q: decoding: %w", name, err)
		}
		return nil
	})
	return p, err
}

// ListPlans implements store.Store, in byte order of names.
func (s *Store) ListPlans(context.Context) ([]store.Plan, error) {
	var plans []store.Plan
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketPlans).ForEach(func(name, v []byte) error {
			var p store.Plan
			if err := json.Unmarshal(v, &p); err != nil {
				return fmt.Errorf("plan %q: decoding: %w", name, err)
			}
			plans = append(plans, p)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("listing plans: %w", err)
	}
	return plans, nil
}

// DeletePlan implements store.Store.
func (s *Store) DeletePlan(_ context.Context, name string) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketPlans)
		if b.Get([]byte(name)) == nil {
			return fmt.Errorf("plan %q: %w", name, store.ErrNotFound)
		}
		if err := b.Delete([]byte(name)); err != nil {
			return fmt.Errorf("plan %q: deleting: %w", name, err)
		}
		return nil
	})
}

// Allow implements store.Store with in-memory buckets (see the package
// comment); see gcra.Decide for Rate <= 0 and Burst < 1.
func (s *Store) Allow(_ context.Context, bucket string, t store.Throttle) (store.Decision, error) {
	return s.buckets.Allow(bucket, t, s.now()), nil
}

// Consume implements store.Store. The count is on disk after the next
// flush (see the package comment).
func (s *Store) Consume(_ context.Context, keyID string, w *store.Window, now time.Time) (store.QuotaDecision, error) {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return store.QuotaDecision{}, fmt.Errorf("consuming for %q: store %q is closed", keyID, s.path)
	}
	if hook := s.consumeHook.Load(); hook != nil {
		(*hook)()
	}
	return s.counts.Consume(keyID, w, now), nil
}

// Meter implements store.Meter by calling Allow and Consume in turn: the
// buckets and counters are in memory, so one call would save nothing.
func (s *Store) Meter(ctx context.Context, buckets []store.BucketCheck, keyID string, w *store.Window, now time.Time) (store.MeterResult, error) {
	return store.MeterByParts(ctx, s, buckets, keyID, w, now)
}

// QuotaUsed implements store.Store, counting what is not yet flushed.
func (s *Store) QuotaUsed(_ context.Context, keyID string, w store.Window) (int64, error) {
	return s.counts.QuotaUsed(keyID, w), nil
}

// Usage implements store.Store, counting what is not yet flushed.
func (s *Store) Usage(_ context.Context, keyID string, from, to time.Time) (map[string]int64, error) {
	return s.counts.Usage(keyID, from, to), nil
}
