package bench

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// runGap is the space between two runs on the chart's time axis.
const runGap = 2.0

// WriteChart draws the suite's throughput (top) and p99 latency (middle,
// log scale, with the 25 ms target) per second as a PNG, the runs one
// after the other on one time axis, the time between them left out (a
// ledger fill takes minutes), each run in its own colour; and, when runs
// had a filled ledger, the growth curve (bottom).
func (s *Suite) WriteChart(path string) error {
	if len(s.Results) == 0 {
		return fmt.Errorf("no results to chart")
	}
	rps, p99 := plot.New(), plot.New()
	rps.Title.Text = "oncehook bench: throughput and p99 latency per second"
	rps.Y.Label.Text = "requests/s"
	rps.Y.Min = 0
	rps.Y.Tick.Marker = wholeTicks{}
	p99.X.Label.Text = "seconds of the runs, one after the other (the time between runs left out)"
	p99.Y.Label.Text = "p99 latency (ms, log scale)"
	p99.Y.Scale = plot.LogScale{}
	p99.Y.Tick.Marker = logTicks{}
	rps.X.Tick.Marker, p99.X.Tick.Marker = secondTicks{}, secondTicks{}
	for _, p := range []*plot.Plot{rps, p99} {
		p.Add(plotter.NewGrid())
	}

	maxX, maxRPS, minP99, maxP99 := 0.0, 0.0, 1e9, 0.0
	offset := 0.0 // where the run starts on the axis
	for i, r := range s.Results {
		if i > 0 && maxX > 0 {
			offset = maxX + runGap
		}
		var tp, lat plotter.XYs
		top := 0.0
		for _, sec := range r.Timeline {
			x := offset + sec.At.Sub(r.Started).Seconds()
			maxX, maxRPS, top = max(maxX, x), max(maxRPS, sec.RPS), max(top, sec.RPS)
			tp = append(tp, plotter.XY{X: x, Y: sec.RPS})
			if sec.P99 > 0 {
				lat = append(lat, plotter.XY{X: x, Y: sec.P99})
				minP99, maxP99 = min(minP99, sec.P99), max(maxP99, sec.P99)
			}
		}
		if len(tp) == 0 {
			continue
		}
		style := func(l *plotter.Line) {
			l.Color = plotutil.Color(i)
			l.Width = vg.Points(1.5)
		}
		lt, pt, err := plotter.NewLinePoints(tp)
		if err != nil {
			return err
		}
		style(lt)
		pt.Color, pt.Radius = plotutil.Color(i), vg.Points(1.5)
		rps.Add(lt, pt)
		// The run's name above its line, instead of a legend that would hide lines.
		name, err := plotter.NewLabels(plotter.XYLabels{XYs: plotter.XYs{{X: tp[0].X, Y: top}}, Labels: []string{r.Name}})
		if err != nil {
			return err
		}
		name.TextStyle[0].Color = plotutil.Color(i)
		name.Offset = vg.Point{X: -vg.Points(4), Y: vg.Points(6)}
		rps.Add(name)
		if len(lat) > 0 {
			ll, lp, err := plotter.NewLinePoints(lat)
			if err != nil {
				return err
			}
			style(ll)
			lp.Color, lp.Radius = plotutil.Color(i), vg.Points(1.5)
			p99.Add(ll, lp)
		}
	}
	// The p99 target, and a y range that shows it.
	target, err := plotter.NewLine(plotter.XYs{{X: 0, Y: targetP99MS}, {X: maxX, Y: targetP99MS}})
	if err != nil {
		return err
	}
	target.Color = color.Gray{Y: 120}
	target.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p99.Add(target)
	p99.Legend.Add(fmt.Sprintf("target %d ms", targetP99MS), target)
	p99.Legend.Top = true
	p99.Legend.Left = true
	p99.Y.Min = min(minP99, targetP99MS) / 2
	p99.Y.Max = max(maxP99, targetP99MS) * 2
	rps.Y.Max = maxRPS * 1.15
	rps.X.Min, p99.X.Min = 0, 0
	rps.X.Max, p99.X.Max = maxX+1, maxX+1

	plots := [][]*plot.Plot{{rps}, {p99}}
	height := 8 * vg.Inch
	if g := s.growth(); g != nil {
		gp, err := growthPlot(g)
		if err != nil {
			return err
		}
		plots = append(plots, []*plot.Plot{gp})
		height = 12 * vg.Inch
	}
	img := vgimg.New(11*vg.Inch, height)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(plots), Cols: 1, PadX: vg.Millimeter, PadY: 4 * vg.Millimeter,
		PadTop: 2 * vg.Millimeter, PadBottom: 2 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: 4 * vg.Millimeter}
	canvases := plot.Align(plots, tiles, dc)
	for j := range plots {
		plots[j][0].Draw(canvases[j][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// wholeTicks are gonum's default ticks labelled without decimals.
type wholeTicks struct{}

func (wholeTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = fmt.Sprintf("%.0f", ticks[i].Value)
		}
	}
	return ticks
}

// secondTicks label every 5 or 10 seconds (more for long suites), with
// a minor tick each second or step/5.
type secondTicks struct{}

func (secondTicks) Ticks(lo, hi float64) []plot.Tick {
	step := 5.0
	for (hi-lo)/step > 16 {
		step *= 2
	}
	var ticks []plot.Tick
	for x := math.Ceil(lo/(step/5)) * (step / 5); x <= hi; x += step / 5 {
		t := plot.Tick{Value: x}
		if math.Mod(x, step) == 0 {
			t.Label = fmt.Sprintf("%.0f", x)
		}
		ticks = append(ticks, t)
	}
	return ticks
}

// logTicks label 1, 2 and 5 times each power of ten.
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for p := math.Floor(math.Log10(lo)); math.Pow(10, p) <= hi; p++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, p)
			if v >= lo && v <= hi {
				ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', -1, 64)})
			}
		}
	}
	return ticks
}

// growthPlot draws unique's and storm's throughput by ledger size, the
// sizes evenly spaced; runs made while the pruner deleted are marked apart.
func growthPlot(points []GrowthPoint) (*plot.Plot, error) {
	var sizes []int64
	for _, g := range points {
		if !slices.Contains(sizes, g.Rows) {
			sizes = append(sizes, g.Rows)
		}
	}
	slices.Sort(sizes)
	p := plot.New()
	p.Title.Text = "throughput by ledger size (events filled in before the runs)"
	p.X.Label.Text = "ledger events"
	p.Y.Label.Text = "requests/s"
	p.Y.Min = 0
	p.Y.Tick.Marker = wholeTicks{}
	var ticks []plot.Tick
	for i, n := range sizes {
		ticks = append(ticks, plot.Tick{Value: float64(i), Label: rowsLabel(n)})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.X.Min, p.X.Max = -0.3, float64(len(sizes)-1)+0.3
	p.Add(plotter.NewGrid())
	p.Legend.Top, p.Legend.Left = true, false
	maxY := 0.0
	series := []struct {
		name    string
		pruning bool
		rps     func(GrowthPoint) float64
	}{
		{"unique", false, func(g GrowthPoint) float64 { return g.UniqueRPS }},
		{"storm", false, func(g GrowthPoint) float64 { return g.StormRPS }},
		{"unique, pruning", true, func(g GrowthPoint) float64 { return g.UniqueRPS }},
		{"storm, pruning", true, func(g GrowthPoint) float64 { return g.StormRPS }},
	}
	for i, sr := range series {
		var xy plotter.XYs
		for _, g := range points {
			if v := sr.rps(g); g.Pruning == sr.pruning && v > 0 {
				xy = append(xy, plotter.XY{X: float64(slices.Index(sizes, g.Rows)), Y: v})
				maxY = max(maxY, v)
			}
		}
		if len(xy) == 0 {
			continue
		}
		colour := plotutil.Color(i % 2)
		sc, err := plotter.NewScatter(xy)
		if err != nil {
			return nil, err
		}
		sc.Color, sc.Radius = colour, vg.Points(4)
		if sr.pruning {
			sc.Shape = draw.PyramidGlyph{}
			sc.Radius = vg.Points(6)
			p.Add(sc)
			p.Legend.Add(sr.name, sc)
			continue
		}
		sc.Shape = draw.CircleGlyph{}
		l, err := plotter.NewLine(xy)
		if err != nil {
			return nil, err
		}
		l.Color, l.Width = colour, vg.Points(1.5)
		p.Add(l, sc)
		p.Legend.Add(sr.name, l, sc)
	}
	p.Y.Max = maxY * 1.2
	return p, nil
}
