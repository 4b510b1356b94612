// Package admin serves drawbridge's operator API on the admin listener:
// health and readiness probes, metrics, profiles, upstream status, and
// the management of API keys, usage plans and usage reports over a
// store.Store.
//
// The key operations (CreateKey, ListKeys, RevokeKey, ImportKeys) are
// exported so that "drawbridge keys" can run the same logic against the
// store directly when no gateway is running.
package admin
