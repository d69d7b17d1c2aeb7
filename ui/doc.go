// Package ui is Vigil's whole HTTP surface, served by gin on every node:
//
//	ui/console  the operator console: server-rendered pages, a little
//	            embedded JavaScript and CSS, server-sent events, under /ui/
//	ui/api      the REST API, JSON under /api/v1 (docs/api.md)
//	ui/auth     who is calling and what they may do, shared by both:
//	            console sign-in sessions and their cookies, CSRF and Origin
//	            checks, API tokens, the node's setup token, roles, and the
//	            per-address limits on sign-in and on wrong tokens
//
// This package holds what the three share: the view of the cluster that
// the appliance supplies (cluster.go, in this package's own types, so that
// nothing under ui/ imports the cluster), and the small HTTP helpers that
// turn a Service error into a status and a sentence an operator can act
// on (http.go).
//
// The appliance builds the parts and mounts them on one engine
// (appliance/node.go). Everything under ui/ reaches the replicated state
// only through the monitoring Service and the interfaces declared here.
package ui
