package health

import "time"

// Defaults applied by [Run] to zero fields of [Options].
const (
	// DefaultPath is requested when Options.Path is empty.
	DefaultPath = "/"
	// DefaultInterval is the time between checks of one target.
	DefaultInterval = 10 * time.Second
	// DefaultTimeout bounds one check, including reading the response head.
	DefaultTimeout = 5 * time.Second
	// DefaultHealthyThreshold consecutive successes mark a target up.
	DefaultHealthyThreshold = 2
	// DefaultUnhealthyThreshold consecutive failures mark a target down.
	DefaultUnhealthyThreshold = 3
)

// maxDrain is how much of a check response body is read so the connection
// can be reused; the body's content is never judged.
const maxDrain = 64 << 10

const userAgent = "drawbridge-health-check"
