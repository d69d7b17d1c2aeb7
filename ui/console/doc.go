// Package console is Vigil's operator console: server-rendered pages (html/template),
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
// contacts (each with where it stands, and a banner when the next one is
// due), the organisation's police URNs (a URN call offered only when
// monitoring.Service.URNFor says the alarm is eligible and the URN has not
// expired; 999 and 101 always), and the whole timeline; every action is
// one click that logs it.
//
// The sessions board shows the timed sessions with the time left and
// their Update messages, and the devices with battery, last seen and node.
// Supervisors see the KPIs against the BS 8484 targets, a chart of alarms
// per day and the open alarms' ages, and export the alarms as CSV. Admins
// manage organisations, workers and their PINs, devices and their
// credentials, and operators. The cluster page shows the nodes, the
// leader, health, devices per node and replication lag.
//
// Sign-in sessions, CSRF, the setup token and the per-address limits are
// ui/auth's, shared with the REST API (ui/api); the console gets its
// *auth.Auth from ui/server, which mounts the two on one engine.
//
// Any node serves the console and forwards writes to the leader. When the
// node a page is on stops, the page says so at once and moves to another
// node with a replicated, single-use resume ticket, keeping the operator
// signed in and their unsent notes (handover.go).
//
// The console's files:
//
//	console.go     Config, Console, routes, security headers
//	login.go       the sign-in page, sign-in and sign-out
//	hub.go         the event bus to browsers (SSE), the location trails
//	queue.go       the alarm queue page and the event stream
//	alarm.go       the alarm page and its actions
//	board.go       the sessions and devices board
//	reports.go     the supervisors' KPIs, charts and CSV export
//	chart.go       the reports' charts as SVG
//	admin.go       organisations, workers, PINs, devices, operators
//	clusterpage.go the cluster page
//	handover.go    moving a page to another node: tickets, alive, resume
//	view.go        what pages show, and how
//	plot.go        the location trail as SVG
//	setup.go       the local operator API for the vigil operator and token commands
package console
