// Package router picks the route for a partner request from its host,
// method and path, the way an Amazon API Gateway REST API picks a resource
// and method.
//
// Route paths are templates made of literal segments, {param} segments and
// an optional final greedy {name+} segment. The routing table is built once
// by [New] into a tree per host; matching walks it segment by segment,
// preferring a literal over {param} over {greedy+} and backtracking when a
// more specific branch dead-ends deeper down.
//
// Resolution happens in two steps, as in API Gateway: first the most
// specific resource (path template) is chosen, then its method. A request
// whose method the chosen resource does not declare is not routed, even if
// a less specific resource would accept it; API Gateway answers such a
// request with 403 Missing Authentication Token.
//
// The same [Template] type serves upstream path rewrites: [Template.Expand]
// fills a template from the path values the router stored on the request.
package router
