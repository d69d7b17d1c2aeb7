package console

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// The trail plot: positions drawn to scale around the newest fix, with its
// accuracy circle, a scale bar and north up. No map tiles: the appliance
// may have no internet, and the coordinates go to the police as numbers
// anyway.

// Size of the plot, in SVG units.
const (
	plotW, plotH = 480, 300
	plotPad      = 28.0
	// minExtent is the smallest half-width shown, in metres, so that a
	// single precise fix does not fill the plot.
	minExtent = 40.0
)

// plotPoint is one fix in plot coordinates.
type plotPoint struct {
	X, Y, R float64
	Class   string
	Title   string
}

// plotLine is a line in plot coordinates.
type plotLine struct{ X1, Y1, X2, Y2 float64 }

// plotLabel is a text in plot coordinates.
type plotLabel struct {
	X, Y   float64
	Text   string
	Anchor string
}

// trailPlot is what the template draws.
type trailPlot struct {
	W, H     int
	Grid     []plotLine
	Trail    string // polyline points, oldest first
	Points   []plotPoint
	Accuracy *plotPoint // the newest fix's accuracy circle
	Scale    plotLine
	Labels   []plotLabel
	ScaleTxt string
	Span     string // the time the trail covers
}

// plotFix is a fix to plot and what it is.
type plotFix struct {
	Loc   monitoring.Location
	At    time.Time
	Alarm bool // where the alarm was raised
}

// metresPerDegLat is close enough at the scale of a street.
const metresPerDegLat = 111_320.0

// newTrailPlot returns the plot of fixes, or nil if there are none. The
// newest fix is the reference point.
func newTrailPlot(fixes []plotFix) *trailPlot {
	if len(fixes) == 0 {
		return nil
	}
	sort.SliceStable(fixes, func(i, j int) bool { return fixes[i].At.Before(fixes[j].At) })
	newest := fixes[len(fixes)-1]
	for i := len(fixes) - 1; i >= 0; i-- { // the newest fix that is not only the alarm's
		if !fixes[i].Alarm {
			newest = fixes[i]
			break
		}
	}
	lat0, lon0 := newest.Loc.Lat, newest.Loc.Lon
	cos := math.Cos(lat0 * math.Pi / 180)
	// Metres east and north of the reference.
	xy := func(l monitoring.Location) (float64, float64) {
		return (l.Lon - lon0) * metresPerDegLat * cos, (l.Lat - lat0) * metresPerDegLat
	}
	minX, maxX, minY, maxY := 0.0, 0.0, 0.0, 0.0
	for _, f := range fixes {
		x, y := xy(f.Loc)
		minX, maxX = math.Min(minX, x), math.Max(maxX, x)
		minY, maxY = math.Min(minY, y), math.Max(maxY, y)
	}
	acc := newest.Loc.Accuracy
	minX, maxX = math.Min(minX, -acc), math.Max(maxX, acc)
	minY, maxY = math.Min(minY, -acc), math.Max(maxY, acc)
	cx, cy := (minX+maxX)/2, (minY+maxY)/2
	half := math.Max(math.Max(maxX-minX, maxY-minY)/2, minExtent) * 1.1
	scale := math.Min((plotW-2*plotPad)/2, (plotH-2*plotPad)/2) / half // SVG units per metre
	toPlot := func(x, y float64) (float64, float64) {
		return round1(plotW/2 + (x-cx)*scale), round1(plotH/2 - (y-cy)*scale)
	}
	p := &trailPlot{W: plotW, H: plotH}

	// A grid every step metres, and a scale bar of one step.
	step := niceStep(half * 2 / 4)
	for gx := math.Ceil((cx-half*2)/step) * step; gx <= cx+half*2; gx += step {
		x, _ := toPlot(gx, 0)
		if x >= 0 && x <= plotW {
			p.Grid = append(p.Grid, plotLine{X1: x, Y1: 0, X2: x, Y2: plotH})
		}
	}
	for gy := math.Ceil((cy-half*2)/step) * step; gy <= cy+half*2; gy += step {
		_, y := toPlot(0, gy)
		if y >= 0 && y <= plotH {
			p.Grid = append(p.Grid, plotLine{X1: 0, Y1: y, X2: plotW, Y2: y})
		}
	}
	p.Scale = plotLine{X1: 16, Y1: plotH - 14, X2: round1(16 + step*scale), Y2: plotH - 14}
	p.ScaleTxt = metres(step)

	var pts []string
	for i, f := range fixes {
		x, y := toPlot(xy(f.Loc))
		title := clock(f.At)
		if f.Loc.Accuracy > 0 {
			title += fmt.Sprintf(", ±%s", metres(f.Loc.Accuracy))
		}
		if f.Loc.Source != "" {
			title += ", " + f.Loc.Source
		}
		pt := plotPoint{X: x, Y: y, R: 3.5, Class: "fix", Title: title}
		switch {
		case f.Alarm:
			pt.Class, pt.R, pt.Title = "fix-alarm", 10, "alarm raised here, "+title
		case f.At.Equal(newest.At) && f.Loc == newest.Loc:
			pt.Class, pt.R, pt.Title = "fix-last", 7, "latest fix, "+title
		default:
			if len(fixes) > 1 {
				pt.Class = fmt.Sprintf("fix fix-age%d", min(3, 3*(len(fixes)-1-i)/len(fixes)))
			}
		}
		if !f.Alarm {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
		}
		p.Points = append(p.Points, pt)
	}
	p.Trail = strings.Join(pts, " ")
	if acc > 0 {
		x, y := toPlot(0, 0)
		p.Accuracy = &plotPoint{X: x, Y: y, R: round1(acc * scale), Title: "accuracy ±" + metres(acc)}
	}
	if first := fixes[0].At; !first.IsZero() && len(fixes) > 1 {
		p.Span = fmt.Sprintf("%d fixes from %s to %s", len(fixes), clock(first), clock(fixes[len(fixes)-1].At))
	}
	return p
}

// niceStep returns 1, 2 or 5 times a power of ten near d.
func niceStep(d float64) float64 {
	if d <= 0 {
		return 10
	}
	p := math.Pow(10, math.Floor(math.Log10(d)))
	for _, m := range []float64{1, 2, 5, 10} {
		if d <= m*p*1.5 {
			return m * p
		}
	}
	return 10 * p
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }
