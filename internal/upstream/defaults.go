package upstream

import "time"

// Defaults applied by [NewPool] to zero fields of [PoolOptions].
const (
	// DefaultDNSRefresh is how often host-name targets are re-resolved.
	DefaultDNSRefresh = 30 * time.Second
	// DefaultFailWindow is the passive ejection window when MaxFails is set
	// but FailWindow is zero.
	DefaultFailWindow = 10 * time.Second
	// DefaultEjectFor is how long a passively ejected target is skipped when
	// MaxFails is set but EjectFor is zero.
	DefaultEjectFor = 30 * time.Second
	// DefaultLookupTimeout bounds one DNS lookup of one host name.
	DefaultLookupTimeout = 5 * time.Second
)

// Balancing policy names accepted in [PoolOptions].Balance.
const (
	BalanceRoundRobin    = "round_robin"
	BalanceLeastRequests = "least_requests"
)

// minDialAttempt is the least time one address gets when several share a
// dial deadline, so a slow first address cannot starve the others entirely
// (the same floor the net package uses).
const minDialAttempt = 2 * time.Second
