package webui

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// History is a ring buffer of samples of the number of live mappings,
// one per step, for the chart of the last hour.
type History struct {
	mu   sync.Mutex
	step time.Duration
	buf  []Sample
	next int
	full bool
}

// Sample is one point of the chart.
type Sample struct {
	At    time.Time
	Count int
}

// NewHistory keeps the last n samples taken every step.
func NewHistory(n int, step time.Duration) *History {
	return &History{step: step, buf: make([]Sample, n)}
}

// Add records a sample.
func (h *History) Add(at time.Time, count int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf[h.next] = Sample{At: at, Count: count}
	h.next = (h.next + 1) % len(h.buf)
	if h.next == 0 {
		h.full = true
	}
}

// Samples gives the samples oldest first.
func (h *History) Samples() []Sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.full {
		return append([]Sample(nil), h.buf[:h.next]...)
	}
	return append(append([]Sample(nil), h.buf[h.next:]...), h.buf[:h.next]...)
}

// Chart geometry (SVG user units).
const (
	chartW, chartH = 600, 140
	padL, padB     = 36, 20
)

// SVG draws the samples of the hour before now as an inline SVG chart:
// a polyline, the largest count on the vertical axis, minutes on the
// horizontal one.
func (h *History) SVG(now time.Time) string {
	span := time.Duration(len(h.buf)) * h.step
	var pts []Sample
	top := 0
	for _, s := range h.Samples() {
		if now.Sub(s.At) <= span && !s.At.After(now) {
			pts = append(pts, s)
			top = max(top, s.Count)
		}
	}
	yMax := max(top, 1)
	x := func(t time.Time) float64 {
		return padL + float64(chartW-padL)*(1-float64(now.Sub(t))/float64(span))
	}
	y := func(v int) float64 { return float64(chartH-padB) * (1 - float64(v)/float64(yMax)) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="live mappings over the last hour">`, chartW, chartH)
	fmt.Fprintf(&b, `<line x1="%d" y1="0" x2="%d" y2="%d" stroke="#999"/><line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#999"/>`,
		padL, padL, chartH-padB, padL, chartH-padB, chartW, chartH-padB)
	fmt.Fprintf(&b, `<text x="%d" y="12" text-anchor="end" font-size="12">%d</text><text x="%d" y="%d" text-anchor="end" font-size="12">0</text>`,
		padL-4, yMax, padL-4, chartH-padB)
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="12">-%d min</text><text x="%d" y="%d" text-anchor="end" font-size="12">now</text>`,
		padL, chartH-4, int(span/time.Minute), chartW, chartH-4)
	switch len(pts) {
	case 0:
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" font-size="14">no samples yet</text>`, (chartW+padL)/2, chartH/2)
	case 1:
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="#1565c0"/>`, x(pts[0].At), y(pts[0].Count))
	default:
		b.WriteString(`<polyline fill="none" stroke="#1565c0" stroke-width="2" points="`)
		for i, p := range pts {
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%.1f,%.1f", x(p.At), y(p.Count))
		}
		b.WriteString(`"/>`)
	}
	b.WriteString(`</svg>`)
	return b.String() // numbers and fixed text only
}
