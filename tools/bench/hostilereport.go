package main

// The hostile part's report: one row per case, and its key=value line.

import (
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// mdCell makes s safe in a markdown table cell: a pipe is escaped, and a
// control or format character (a newline, an escape, a right-to-left
// override) is written as its \u escape, so that the report shows what was
// sent rather than what it would do to the reader's terminal or page.
func mdCell(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '|':
			b.WriteString(`\|`)
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029':
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// shorten cuts s to at most n bytes at the last space before, and marks
// the cut with "…".
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n-- // not inside a character
	}
	cut := s[:n]
	if i := strings.LastIndexByte(cut, ' '); i > 0 {
		cut = cut[:i]
	}
	return strings.TrimRight(cut, " ,;:") + "…"
}

// rssCell is "61.2 (58.0 → 59.1)": the peak, and before → after, in MiB.
func rssCell(w watchResult) string {
	return fmt.Sprintf("%s (%s → %s)", mib(w.rssPeak), mib(w.rssBefore), mib(w.rssAfter))
}

// apiCell is "1.20 / 5.00 / 20.10", the operator's reads' p50, p99 and max
// in ms, with the failures if any: "; 3 of 50 failed (HTTP 503)".
func apiCell(w watchResult) string {
	if len(w.api) == 0 && w.apiFailed == 0 {
		return "none"
	}
	s := "all failed"
	if len(w.api) > 0 {
		s = fmt.Sprintf("%s / %s / %s", ms(quantile(w.api, 0.5)), ms(quantile(w.api, 0.99)), ms(w.api[len(w.api)-1]))
	}
	if w.apiFailed > 0 {
		s += fmt.Sprintf("; **%d of %d failed** (%s)", w.apiFailed, w.apiFailed+len(w.api), w.apiFirstFailure)
	}
	return s
}

// legitAllOK reports whether every alarm of the legitimate device was
// PUBACKed, during the case and after it.
func (w watchResult) legitAllOK() bool { return w.legitOK == w.legitSent && w.legitAfter }

// legitCell is "12/12, max 35 ms; after: yes".
func legitCell(w watchResult) string {
	after := "yes"
	if !w.legitAfter {
		after = "**no**"
	}
	s := fmt.Sprintf("%d/%d", w.legitOK, w.legitSent)
	if w.legitOK < w.legitSent {
		s = "**" + s + "**"
	}
	if w.legitOK > 0 {
		s += fmt.Sprintf(", max %s ms", ms0(w.legitMax))
	}
	return s + "; after: " + after
}

// docCell says whether a case was answered as documented.
func docCell(c hostileCase) string {
	switch {
	case c.skipped:
		return "not run"
	case c.documented:
		return "yes"
	}
	return "**no**"
}

// write prints the hostile part's section.
func (r *hostileReport) write(w io.Writer) {
	fmt.Fprintf(w, "### Hostile input, measured\n\n")
	fmt.Fprintf(w, "Each case sent to %s (a follower), whose RSS was %s MiB before the first. While each case ran: the node's VmRSS "+
		"and open files every 50 ms (peak, and before → after: after is read %s after the case and the legitimate alarm that follows it); "+
		"an operator's GET /api/v1/organisations/%s every 100 ms from its own connection (p50 / p99 / max ms of those answered 200); "+
		"a device connected before the part raising a test alarm every 500 ms (PUBACKed within 5 s / sent), and once more after the case.\n\n",
		r.node, mib(r.baseline), r.plan.settle, benchOrg)
	fmt.Fprintf(w, "| Case | Sent | Answer | As documented | Peak RSS MiB (before → after) | Open files, peak | API p50 / p99 / max ms | Legitimate device's alarms |\n"+
		"|---|---|---|---|--:|--:|---|---|\n")
	for _, c := range r.cases {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %d | %s | %s |\n", c.id, mdCell(c.sent), mdCell(c.answer), docCell(c),
			rssCell(c.watch), c.watch.filesPeak, apiCell(c.watch), legitCell(c.watch))
	}
	fmt.Fprintln(w)
}

// hostileSummaryLine is the hostile part's key=value line; "" when the
// part did not run. Per case: doc (yes, no, skip), the peak RSS in MiB,
// the API's p99 in ms and its failures, and the legitimate device's
// alarms PUBACKed of those sent (during and after).
func hostileSummaryLine(r *hostileReport) string {
	if r == nil {
		return ""
	}
	var b strings.Builder
	notDoc, legitFailed, apiFailed := 0, 0, 0
	var peak int64
	for _, c := range r.cases {
		if !c.skipped && !c.documented {
			notDoc++
		}
		if !c.watch.legitAllOK() {
			legitFailed++
		}
		apiFailed += c.watch.apiFailed
		peak = max(peak, c.watch.rssPeak)
	}
	fmt.Fprintf(&b, "bench-hostile: node=%s cases=%d not_as_documented=%d legit_failed_cases=%d api_failures=%d rss_base_mib=%s rss_peak_mib=%s",
		r.node, len(r.cases), notDoc, legitFailed, apiFailed, mib(r.baseline), mib(peak))
	for _, c := range r.cases {
		doc := "yes"
		switch {
		case c.skipped:
			doc = "skip"
		case !c.documented:
			doc = "no"
		}
		w := c.watch
		p99 := "NA"
		if len(w.api) > 0 {
			p99 = ms(quantile(w.api, 0.99))
		}
		after := 0
		if w.legitAfter {
			after = 1
		}
		fmt.Fprintf(&b, " c%s_doc=%s c%s_rss_mib=%s c%s_api_p99_ms=%s c%s_api_failed=%d c%s_legit=%d/%d",
			c.id, doc, c.id, mib(w.rssPeak), c.id, p99, c.id, w.apiFailed, c.id, w.legitOK+after, w.legitSent+1)
	}
	return b.String()
}
