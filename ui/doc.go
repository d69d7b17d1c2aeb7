// Package ui is Vigil's operator console: server-rendered pages (html/template),
// a little embedded JavaScript and CSS, and server-sent events, served by
// gin on every node under /ui/. Nothing is loaded from the internet.
//
// Operators sign in with accounts kept in the replicated state
// (appliance/monitoring/operator.go), so a session cookie works on every
// node and a lockout holds on every node. Every state-changing request
// carries a CSRF token bound to the session and a same-origin Origin
// header; sign-in is rate-limited per address.
//
// The live alarm queue is pushed to browsers as server-sent events moments
// after each commit, from this node's event bus (monitoring.Service.Subscribe).
// The alarm page puts the important information first, then the worker,
// the device, the location with its trail (an SVG drawn here, no map
// tiles), the Update message, the audio, the procedure, the escalation
// contacts and police URNs, and the whole timeline; every action is one
// click that logs it.
//
// The console's files:
//
//	console.go   Config, Console, routes, security headers
//	auth.go      sign-in and out, sessions, the Require middleware, roles
//	csrf.go      CSRF tokens and the Origin check
//	ratelimit.go sign-in attempts per address
//	hub.go       the event bus to browsers (SSE), the location trails
//	queue.go     the alarm queue page and the event stream
//	alarm.go     the alarm page and its actions
//	view.go      what pages show, and how
//	plot.go      the location trail as SVG
//	setup.go     the local operator API for the vigil operator command
//	cli.go       the vigil operator command
package ui
