package firmware

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the catalog's Prometheus series. They exist without a Registerer too, so the
// upload path never checks for nil.
type metrics struct {
	uploads  *prometheus.CounterVec
	bytes    prometheus.Counter
	duration prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		uploads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "lwota", Subsystem: "firmware", Name: "uploads_total",
			Help: "Image uploads, by result: ok, or the reason they were refused.",
		}, []string{"result"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "lwota", Subsystem: "firmware", Name: "upload_bytes_total",
			Help: "Bytes read from image uploads, refused ones included.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "lwota", Subsystem: "firmware", Name: "upload_duration_seconds",
			Help:    "Time from the start of an upload to its answer.",
			Buckets: []float64{.01, .05, .1, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}),
	}
	for _, r := range uploadResults {
		m.uploads.WithLabelValues(r.label) // every series exists from the start, at 0
	}
	m.uploads.WithLabelValues("ok")
	m.uploads.WithLabelValues("error")
	if reg != nil {
		reg.MustRegister(m.uploads, m.bytes, m.duration)
	}
	return m
}

// uploadResults label a refused upload by the first error of the list it matches.
var uploadResults = []struct {
	err   error
	label string
}{
	{context.Canceled, "canceled"},
	{context.DeadlineExceeded, "canceled"},
	{ErrStorage, "storage"},
	{ErrTooLarge, "too_large"},
	{ErrTruncated, "truncated"},
	{ErrHashMismatch, "hash_mismatch"},
	{ErrUnsigned, "unsigned"},
	{ErrKeyNotFound, "key_not_found"},
	{ErrBadSignature, "bad_signature"},
	{ErrInvalid, "invalid"},
}

// resultLabel names err for the uploads_total series.
func resultLabel(err error) string {
	if err == nil {
		return "ok"
	}
	for _, r := range uploadResults {
		if errors.Is(err, r.err) {
			return r.label
		}
	}
	return "error"
}

func (m *metrics) upload(err error, n int64, d time.Duration) {
	m.uploads.WithLabelValues(resultLabel(err)).Inc()
	m.bytes.Add(float64(n))
	m.duration.Observe(d.Seconds())
}
