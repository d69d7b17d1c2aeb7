package main

// The TLS part's report: per CONNECT and per alarm, plain MQTT beside MQTT
// over TLS, and its summary line.

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// ms3 formats a duration in milliseconds with three decimals, for CPU
// time per operation.
func ms3(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d)/float64(time.Millisecond)) }

// tlsShare formats TLS's share of a cost, (withTLS - plain) / withTLS, as a
// percentage, or "NA".
func tlsShare(plain, withTLS time.Duration, ok bool) string {
	if !ok || withTLS <= 0 {
		return "NA"
	}
	v := math.Round(100 * float64(withTLS-plain) / float64(withTLS))
	if v == 0 {
		return "0" // not "-0"
	}
	return fmt.Sprintf("%.0f", v)
}

// diffMs formats b - a in milliseconds with three decimals, signed, or
// "NA".
func diffMs(a, b time.Duration, ok bool) string {
	if !ok {
		return "NA"
	}
	return fmt.Sprintf("%+.3f", float64(b-a)/float64(time.Millisecond))
}

// stormPair returns the storms on plain MQTT and over TLS, with or
// without cached secrets; ok is false unless both ran and connected.
func (r *tlsReport) stormPair(cached bool) (plain, withTLS *stormResult, ok bool) {
	plain, withTLS = r.storm(plainMQTT, cached), r.storm(tlsMQTT, cached)
	return plain, withTLS, plain != nil && withTLS != nil && len(plain.lat) > 0 && len(withTLS.lat) > 0
}

// tlsSummaryLine is the TLS part's key=value line, with NA for what was
// not measured; "" when the part did not run.
func tlsSummaryLine(r *tlsReport) string {
	if r == nil {
		return ""
	}
	var b strings.Builder
	b.WriteString("bench-tls:")
	for _, cached := range []bool{false, true} {
		key := "connect"
		if cached {
			key = "reconnect"
		}
		p, t, ok := r.stormPair(cached)
		for _, s := range []struct {
			name string
			r    *stormResult
		}{{"plain", p}, {"tls", t}} {
			if s.r == nil || len(s.r.lat) == 0 {
				fmt.Fprintf(&b, " tls_%s_per_s_%s=NA tls_%s_p50_ms_%s=NA tls_%s_p99_ms_%s=NA tls_%s_cpu_ms_%s=NA",
					key, s.name, key, s.name, key, s.name, key, s.name)
				continue
			}
			fmt.Fprintf(&b, " tls_%s_per_s_%s=%.0f tls_%s_p50_ms_%s=%s tls_%s_p99_ms_%s=%s tls_%s_cpu_ms_%s=%s",
				key, s.name, s.r.perSecond(), key, s.name, ms(quantile(s.r.lat, 0.5)), key, s.name, ms(quantile(s.r.lat, 0.99)),
				key, s.name, ms3(s.r.cpuPerConnect()))
		}
		var pc, tc time.Duration
		if ok {
			pc, tc = p.cpuPerConnect(), t.cpuPerConnect()
		}
		fmt.Fprintf(&b, " tls_%s_share_pct=%s", key, tlsShare(pc, tc, ok))
	}
	p, pok := r.alarmTotal(plainMQTT)
	t, tok := r.alarmTotal(tlsMQTT)
	for _, s := range []struct {
		name string
		r    loadResult
		ok   bool
	}{{"plain", p, pok}, {"tls", t, tok}} {
		if !s.ok || s.r.commits == 0 {
			fmt.Fprintf(&b, " tls_alarm_per_s_%s=NA tls_alarm_p50_ms_%s=NA tls_alarm_p99_ms_%s=NA tls_alarm_cpu_ms_%s=NA", s.name, s.name, s.name, s.name)
			continue
		}
		fmt.Fprintf(&b, " tls_alarm_per_s_%s=%.0f tls_alarm_p50_ms_%s=%s tls_alarm_p99_ms_%s=%s tls_alarm_cpu_ms_%s=%s",
			s.name, s.r.perSecond(), s.name, ms(s.r.quantile(0.5)), s.name, ms(s.r.quantile(0.99)), s.name, ms3(s.r.cpuPerCommit()))
	}
	both := pok && tok && p.commits > 0 && t.commits > 0
	fmt.Fprintf(&b, " tls_alarm_cpu_ms_diff=%s tls_alarm_p99_ms_diff=%s",
		diffMs(p.cpuPerCommit(), t.cpuPerCommit(), both), diffMs(p.quantile(0.99), t.quantile(0.99), both))
	return b.String()
}

// writeTLS prints section 7, the cost of TLS.
func (g *gatewayReport) writeTLS(w io.Writer) {
	r := g.tls
	fmt.Fprintf(w, "### 7. The cost of TLS\n\n")
	fmt.Fprintf(w, "Plain MQTT beside MQTT over TLS on the same nodes, each node's TLS listener presenting its certificate from the cluster CA; "+
		"the bench's devices (paho, MQTT 3.1.1) trust only the cluster CA and verify the node's name, and keep no session cache: "+
		"every connection is a full handshake (%s).\n\n", r.handshake)
	fmt.Fprintf(w, "**Per CONNECT.** Connect storms of provisioned devices against %s, %d devices connecting at a time; each connection is timed "+
		"from the dial to the CONNACK (TCP, the TLS handshake, CONNECT with its secret check). New devices: the node checks the secret with "+
		"argon2id (4 MiB, one pass); the same devices again: the node has the check cached (a SHA-256), as for a device that reconnects. "+
		"Node ms/CONNECT: the node's CPU time (utime + stime, /proc/PID/stat, in ticks of %s) from the first dial to the last CONNACK, "+
		"per connection; the CPU columns are shares of all CPUs meanwhile.\n\n", r.node, r.inFlight, clockTick)
	fmt.Fprintf(w, "| Devices | Secrets | Transport | Connects/s | p50 ms | p99 ms | max ms | Failed | node ms/CONNECT | CPU: machine %% | node %% | bench %% |\n"+
		"|--:|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, s := range r.storms {
		secrets := "new devices (argon2id)"
		if s.cached {
			secrets = "the same again (cached)"
		}
		fmt.Fprintf(w, "| %d | %s | %s | %.0f | %s | %s | %s | %d | %s | %s | %s | %s |\n", s.devices, secrets, transportName(s.transport),
			s.perSecond(), ms(quantile(s.lat, 0.5)), ms(quantile(s.lat, 0.99)), ms(quantile(s.lat, 1)), s.failed,
			ms3(s.cpuPerConnect()), pct(s.cpu.busy), pct(s.cpu.nodes), pct(s.cpu.self))
	}
	fmt.Fprintf(w, "\n")
	for _, cached := range []bool{false, true} {
		p, t, ok := r.stormPair(cached)
		if !ok {
			continue
		}
		what := "A new device's CONNECT"
		if cached {
			what = "A reconnection (secret cached)"
		}
		fmt.Fprintf(w, "- %s: %s ms of the node's CPU on plain MQTT, %s ms over TLS: TLS adds %s ms, %s%% of the CONNECT over TLS; "+
			"p50 %s → %s ms, p99 %s → %s ms.\n", what, ms3(p.cpuPerConnect()), ms3(t.cpuPerConnect()),
			diffMs(p.cpuPerConnect(), t.cpuPerConnect(), true), tlsShare(p.cpuPerConnect(), t.cpuPerConnect(), true),
			ms(quantile(p.lat, 0.5)), ms(quantile(t.lat, 0.5)), ms(quantile(p.lat, 0.99)), ms(quantile(t.lat, 0.99)))
	}

	fmt.Fprintf(w, "\n**Per alarm.** %d devices, device i on node i mod 3's broker, each publishing a test alarm QoS 1 and the next as soon as the PUBACK "+
		"arrives (the ingest section's load, from the bench's own devices), on plain MQTT and over TLS, one run after the other (%s); "+
		"%s of warm-up, then %s measured per run. nodes ms/alarm: the three nodes' CPU time per alarm.\n\n",
		tlsAlarmDevices, alarmOrder(r.alarms), r.warmup, alarmRunLength(r.alarms))
	fmt.Fprintf(w, "| Run | Transport | Alarms/s | p50 ms | p99 ms | max ms | Errors | Replies not ok | CPU: machine %% | nodes %% | bench %% | nodes ms/alarm |\n"+
		"|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	row := func(run, tr string, l loadResult, refused string) {
		fmt.Fprintf(w, "| %s | %s | %.0f | %s | %s | %s | %d | %s | %s | %s | %s | %s |\n", run, tr, l.perSecond(),
			ms(l.quantile(0.5)), ms(l.quantile(0.99)), ms(l.quantile(1)), l.errors, refused,
			pct(l.cpu.busy), pct(l.cpu.nodes), pct(l.cpu.self), ms3(l.cpuPerCommit()))
	}
	for i, a := range r.alarms {
		row(fmt.Sprint(i+1), transportName(a.transport), a.loadResult, fmt.Sprint(a.refused))
	}
	if len(r.alarms) > 2 {
		for _, t := range []transport{plainMQTT, tlsMQTT} {
			if l, ok := r.alarmTotal(t); ok {
				row("**all**", transportName(t), l, "")
			}
		}
	}
	p, pok := r.alarmTotal(plainMQTT)
	t, tok := r.alarmTotal(tlsMQTT)
	if pok && tok && p.commits > 0 && t.commits > 0 {
		fmt.Fprintf(w, "\nTLS per alarm: %s ms of the nodes' CPU (%s → %s ms), p50 %s ms, p99 %s ms (%s → %s ms).\n",
			diffMs(p.cpuPerCommit(), t.cpuPerCommit(), true), ms3(p.cpuPerCommit()), ms3(t.cpuPerCommit()),
			diffMs(p.quantile(0.5), t.quantile(0.5), true), diffMs(p.quantile(0.99), t.quantile(0.99), true),
			ms(p.quantile(0.99)), ms(t.quantile(0.99)))
	}
	fmt.Fprintf(w, "\n")
}

// transportName is a transport's name in the report.
func transportName(t transport) string {
	if t == tlsMQTT {
		return "MQTT over TLS"
	}
	return "plain MQTT"
}

// alarmOrder lists the alarm runs' transports in order: "plain, TLS".
func alarmOrder(runs []tlsAlarmRun) string {
	var ts []string
	for _, a := range runs {
		ts = append(ts, map[transport]string{plainMQTT: "plain", tlsMQTT: "TLS"}[a.transport])
	}
	return strings.Join(ts, ", ")
}

// alarmRunLength is the measured time of one alarm run.
func alarmRunLength(runs []tlsAlarmRun) time.Duration {
	if len(runs) == 0 {
		return 0
	}
	return runs[0].elapsed
}
