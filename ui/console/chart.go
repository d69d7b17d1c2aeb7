package console

// The reports' charts, drawn here as SVG: no chart library, nothing from
// the internet, and nothing that runs in the browser.

import (
	"fmt"
	"math"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// Size of the alarms-per-day chart, in SVG units.
const (
	dayW, dayH             = 960, 280
	dayPadL, dayPadR       = 48.0, 12.0
	dayPadT, dayPadB       = 14.0, 40.0
	ageW, ageRow, agePadL  = 480, 30, 120.0
	maxDayLabels           = 12
	dayChartSeriesCategory = 4
)

// The series of the day chart, bottom to top.
var daySeries = []struct{ Class, Label string }{
	{"s-fast", "acknowledged within 10 s"},
	{"s-ok", "within 40 s"},
	{"s-late", "later, or not acknowledged within 40 s"},
	{"s-other", "tests, cancelled by the worker, waiting"},
}

// category returns the series of an alarm in the day chart.
func category(a *monitoring.Alarm, now time.Time) int {
	switch {
	case a.Type == monitoring.AlarmTest || a.Resolution == monitoring.ResolutionTest:
		return 3
	case !a.AckAt.IsZero():
		d := a.AckAt.Sub(a.RaisedAt)
		if d <= monitoring.AckTarget1 {
			return 0
		}
		if d <= monitoring.AckTarget2 {
			return 1
		}
		return 2
	case a.Status == monitoring.StatusClosed:
		if a.ClosedAt.Sub(a.RaisedAt) > monitoring.AckTarget2 {
			return 2
		}
		return 3
	case now.Sub(a.RaisedAt) > monitoring.AckTarget2:
		return 2
	}
	return 3
}

// chartRect is one bar or bar segment.
type chartRect struct {
	X, Y, W, H float64
	Class      string
	Title      string
}

// chartText is a label.
type chartText struct {
	X, Y   float64
	Text   string
	Anchor string
}

// chartLine is a grid line.
type chartLine struct{ X1, Y1, X2, Y2 float64 }

// dayChart is the alarms of each day of a period, stacked by how fast they
// were acknowledged.
type dayChart struct {
	W, H   int
	Rects  []chartRect
	Grid   []chartLine
	YText  []chartText
	XText  []chartText
	Axis   chartLine
	Legend []struct{ Class, Label string }
	Total  int
	Days   int
	Max    int // the busiest day's alarms
}

// newDayChart draws the alarms raised in [from, to), by day in this
// node's time zone.
func newDayChart(alarms []monitoring.Alarm, from, to time.Time) *dayChart {
	now := time.Now()
	var days []time.Time
	for d := from; d.Before(to); d = d.AddDate(0, 0, 1) {
		days = append(days, d)
	}
	counts := make([][dayChartSeriesCategory]int, len(days))
	index := func(t time.Time) int {
		t = t.In(from.Location())
		day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, from.Location())
		lo, hi := 0, len(days)
		for lo < hi { // days are in order
			m := (lo + hi) / 2
			if days[m].Before(day) {
				lo = m + 1
			} else {
				hi = m
			}
		}
		if lo < len(days) && days[lo].Equal(day) {
			return lo
		}
		return -1
	}
	ch := &dayChart{W: dayW, H: dayH, Legend: daySeries, Days: len(days)}
	for i := range alarms {
		if d := index(alarms[i].RaisedAt); d >= 0 {
			counts[d][category(&alarms[i], now)]++
			ch.Total++
		}
	}
	for _, c := range counts {
		ch.Max = max(ch.Max, c[0]+c[1]+c[2]+c[3])
	}
	top := niceCeil(ch.Max)
	plotW, plotH := dayW-dayPadL-dayPadR, dayH-dayPadT-dayPadB
	y := func(n float64) float64 { return round1(dayPadT + plotH - n/float64(top)*plotH) }
	step := top / 4
	for g := 0; g <= top; g += step {
		ch.Grid = append(ch.Grid, chartLine{X1: dayPadL, Y1: y(float64(g)), X2: dayW - dayPadR, Y2: y(float64(g))})
		ch.YText = append(ch.YText, chartText{X: dayPadL - 6, Y: y(float64(g)) + 4, Text: fmt.Sprint(g), Anchor: "end"})
	}
	ch.Axis = chartLine{X1: dayPadL, Y1: y(0), X2: dayW - dayPadR, Y2: y(0)}
	if len(days) == 0 {
		return ch
	}
	slot := plotW / float64(len(days))
	barW := round1(max(1, slot*0.78))
	every := int(math.Ceil(float64(len(days)) / maxDayLabels))
	for i, d := range days {
		x := round1(dayPadL + float64(i)*slot + (slot-barW)/2)
		base := 0
		for s, n := range counts[i] {
			if n == 0 {
				continue
			}
			ch.Rects = append(ch.Rects, chartRect{X: x, Y: y(float64(base + n)), W: barW, H: round1(y(float64(base)) - y(float64(base+n))),
				Class: daySeries[s].Class, Title: fmt.Sprintf("%s: %d %s", d.Format("Mon 2 Jan"), n, daySeries[s].Label)})
			base += n
		}
		if i%every == 0 {
			ch.XText = append(ch.XText, chartText{X: round1(x + barW/2), Y: dayH - dayPadB + 18, Text: d.Format("2 Jan"), Anchor: "middle"})
		}
	}
	return ch
}

// niceCeil returns a round number at least n (and at least 4), divisible
// by 4, for the top of an axis.
func niceCeil(n int) int {
	if n <= 4 {
		return 4
	}
	s := niceStep(float64(n) / 4)
	if s < 1 {
		s = 1
	}
	top := int(math.Ceil(float64(n)/s) * s)
	for top%4 != 0 {
		top += int(s)
	}
	return top
}

// ageBuckets are the age bands of the open alarms.
var ageBuckets = []struct {
	Upto  time.Duration
	Label string
	Class string
}{
	{10 * time.Second, "under 10 s", "s-age"},
	{40 * time.Second, "10 s to 40 s", "s-age"},
	{5 * time.Minute, "40 s to 5 min", "s-age"},
	{30 * time.Minute, "5 to 30 min", "s-age"},
	{2 * time.Hour, "30 min to 2 h", "s-age"},
	{math.MaxInt64, "over 2 h", "s-age"},
}

// ageChart is how many alarms are open in each age band.
type ageChart struct {
	W, H  int
	Rects []chartRect
	Text  []chartText
}

// newAgeChart draws the ages of the open alarms, one bar per band.
func newAgeChart(ages []time.Duration) *ageChart {
	counts := make([]int, len(ageBuckets))
	for _, a := range ages {
		for i, b := range ageBuckets {
			if a < b.Upto {
				counts[i]++
				break
			}
		}
	}
	most := 1
	for _, n := range counts {
		most = max(most, n)
	}
	ch := &ageChart{W: ageW, H: ageRow*len(ageBuckets) + 8}
	barMax := float64(ageW) - agePadL - 50
	for i, b := range ageBuckets {
		y := float64(4 + i*ageRow)
		ch.Text = append(ch.Text, chartText{X: agePadL - 8, Y: y + 18, Text: b.Label, Anchor: "end"})
		w := 0.0
		if counts[i] > 0 {
			w = max(3, round1(float64(counts[i])/float64(most)*barMax))
			ch.Rects = append(ch.Rects, chartRect{X: agePadL, Y: y + 4, W: w, H: ageRow - 10, Class: b.Class,
				Title: fmt.Sprintf("%d open alarms %s old", counts[i], b.Label)})
		}
		ch.Text = append(ch.Text, chartText{X: round1(agePadL + w + 6), Y: y + 18, Text: fmt.Sprint(counts[i]), Anchor: "start"})
	}
	return ch
}
