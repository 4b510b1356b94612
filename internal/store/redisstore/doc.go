// Package redisstore keeps drawbridge's state in Redis, so several gateway
// replicas share keys, plans and exact counters.
//
// Every read-check-write runs as one Lua script on the server (creating a
// key, a GCRA token bucket timed by the server's clock, a quota check and
// its increments), so replicas never race each other and their clocks need
// not agree. Single nodes, Sentinel and Cluster all work; on Cluster every
// key carries the prefix's hash tag, which keeps all of drawbridge's state
// in one slot so the scripts may touch several keys.
//
// Layout, with the default prefix "{drawbridge}:":
//
//	{drawbridge}:keys            hash  key name -> Key as JSON
//	{drawbridge}:keyhash         hash  hex SHA-256 of the value -> key name
//	{drawbridge}:plans           hash  plan name -> Plan as JSON
//	{drawbridge}:bucket:NAME     string  GCRA theoretical arrival time (µs),
//	                             expiring when the bucket is full again
//	{drawbridge}:quota:ID|START  string  count in the quota window, expiring
//	                             a day after the window ends
//	{drawbridge}:usage:ID        hash  UTC day (2006-01-02) -> count, kept
//
// When Redis cannot be reached, every method returns an error wrapping
// [store.ErrUnavailable] within Options.Timeout, and works again once Redis
// is back.
package redisstore
