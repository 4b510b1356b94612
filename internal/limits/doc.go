// Package limits applies throttles and quotas to partner requests the way
// Amazon API Gateway's usage plans do: a token bucket per API key (or per
// key and method when the plan overrides that method), one per route and
// one for the whole gateway, then the key's quota for the current UTC day,
// week or month.
//
// Counters live in a store (internal/store), so replicas sharing a Redis
// store share the buckets and quotas exactly. Refusals are API Gateway's
// default answers: 429 {"message":"Too Many Requests"} for a throttle, 429
// {"message":"Limit Exceeded"} for a quota.
package limits
