// Package health runs active health checks: a GET of each upstream target
// over the upstream's verified transport on a timer, turning consecutive
// results into up/down verdicts delivered through [StatusSetter].
//
// Active checks find a dead target before a partner request does, at the
// cost of steady background traffic. Passive ejection, which learns of a
// failure only when a request hits it but costs nothing, lives with the
// target itself (upstream.Target.ReportFailure).
package health
