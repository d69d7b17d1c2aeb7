// Package sim simulates Vigil devices for demos, load and fault injection.
//
// A Simulator runs N devices against a list of broker addresses, speaking
// device protocol v1 (docs/device-protocol.md) with the paho MQTT client,
// in one of three modes: random (timed sessions with an Update message,
// check-ins with the Safe PIN, heartbeats, location fixes and occasional
// alarms, or the timed steps of a scenario file, docs/sim.md); idle
// (devices that only send heartbeats, for the memory and connection load
// of a fleet at rest); and alarms (a closed loop of alarms, each raised as
// soon as the last one is PUBACKed, for alarm latency and throughput). The
// benchmarks (tools/bench) use the last two. It can first provision an
// organisation, workers with PINs and devices with their secrets through a
// node's HTTP API.
//
// Every alarm and session event goes through a per-device outbox, as the
// protocol asks of real devices: it is resent with the same event_id until
// PUBACKed, and a dropped connection or a publish that times out moves the
// device to the next broker in the list. Each attempt is recorded in a
// History that the fault-injection harness reads as JSON lines; live
// counters (connections, telemetry, events) can be read at any time with
// Status.
package sim
