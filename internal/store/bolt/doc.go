// Package bolt is the embedded, durable store.Store, kept in one bbolt
// file; it is the default for a single gateway.
//
// Keys and plans are written synchronously: a key created is on disk when
// CreateKey returns. Quota and usage counters are kept in memory and
// written in one transaction every FlushInterval and on Close, because an
// fsync per request would cap the gateway at the disk's sync rate. That is
// the durability window: a crash or kill -9 loses at most FlushInterval of
// counts; a clean Close loses none. Throttle buckets live in memory only:
// they refill within seconds, so persisting them buys nothing.
//
// The file is locked while open; a second process gets an error telling
// the operator to stop the first or use its admin API.
//
// Layout (bbolt buckets): keys (name -> JSON), keyhashes (hash -> name),
// plans (name -> JSON), quota ("keyID|windowStart" -> uint64), usage
// ("keyID|2006-01-02" -> uint64), meta ("schema" -> 1). Counters are
// 8-byte big-endian.
package bolt
