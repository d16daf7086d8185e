package bench

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// WriteChart draws the suite's throughput (top) and p99 latency (bottom,
// log scale, with the 25 ms target) per second as a PNG: one time axis
// from the first run's start, each run in its own colour.
func (s *Suite) WriteChart(path string) error {
	if len(s.Results) == 0 {
		return fmt.Errorf("no results to chart")
	}
	t0 := s.Results[0].Started
	for _, r := range s.Results {
		if r.Started.Before(t0) {
			t0 = r.Started
		}
	}
	rps, p99 := plot.New(), plot.New()
	rps.Title.Text = "oncehook bench: throughput and p99 latency per second"
	rps.Y.Label.Text = "requests/s"
	rps.Y.Min = 0
	rps.Y.Tick.Marker = wholeTicks{}
	p99.X.Label.Text = "seconds since the first run started"
	p99.Y.Label.Text = "p99 latency (ms, log scale)"
	p99.Y.Scale = plot.LogScale{}
	p99.Y.Tick.Marker = logTicks{}
	rps.X.Tick.Marker, p99.X.Tick.Marker = secondTicks{}, secondTicks{}
	for _, p := range []*plot.Plot{rps, p99} {
		p.Add(plotter.NewGrid())
	}

	maxX, maxRPS, minP99, maxP99 := 0.0, 0.0, 1e9, 0.0
	for i, r := range s.Results {
		var tp, lat plotter.XYs
		top := 0.0
		for _, sec := range r.Timeline {
			x := sec.At.Sub(t0).Seconds()
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

	img := vgimg.New(11*vg.Inch, 8*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadX: vg.Millimeter, PadY: 4 * vg.Millimeter,
		PadTop: 2 * vg.Millimeter, PadBottom: 2 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: 4 * vg.Millimeter}
	plots := [][]*plot.Plot{{rps}, {p99}}
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
