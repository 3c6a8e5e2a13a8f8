package transfer

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	blocks         prometheus.Counter
	bytes          prometheus.Counter
	cacheHits      prometheus.Counter
	cacheMisses    prometheus.Counter
	cacheEvictions prometheus.Counter
	cacheBytes     prometheus.Gauge
	blobReads      prometheus.Counter
	refused        *prometheus.CounterVec
	grantLookups   *prometheus.CounterVec // by lookupGranted, lookupForbidden, lookupFailed
	grantsStale    prometheus.Counter
}

// Outcomes of asking Grants, the label of lwota_transfer_grant_lookups_total.
const (
	lookupGranted   = "granted"
	lookupForbidden = "forbidden"
	lookupFailed    = "failed"
)

// Reasons a block request is refused, the label of lwota_transfer_refused_total.
const (
	reasonInvalid     = "invalid"     // malformed or forged token, wrong path: 4.04
	reasonExpired     = "expired"     // 4.04 "expired"
	reasonForbidden   = "forbidden"   // Grants said ErrForbidden: 4.03
	reasonUnavailable = "unavailable" // Grants or the blob store failed: 5.03
	reasonBadBlock    = "bad_block"   // a block past the end: 4.02
	reasonMethod      = "method"      // not a GET: 4.05
)

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		blocks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lwota_transfer_blocks_served_total", Help: "Block2 blocks of firmware images served.",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lwota_transfer_bytes_served_total", Help: "Firmware image bytes served in Block2 payloads.",
		}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lwota_transfer_cache_hits_total", Help: "Blocks served from a cached chunk.",
		}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lwota_transfer_cache_misses_total", Help: "Blocks whose chunk was not cached (loaded, or waited for a load in progress).",
		}),
		cacheEvictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lwota_transfer_cache_evictions_total", Help: "Chunks evicted from the cache to stay within its bound.",
		}),
		cacheBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lwota_transfer_cache_bytes", Help: "Bytes of image chunks held by the cache.",
		}),
		blobReads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lwota_transfer_blob_reads_total", Help: "Chunk reads from the blob store.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lwota_transfer_refused_total", Help: "Block requests refused, by reason.",
		}, []string{"reason"}),
		grantLookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lwota_transfer_grant_lookups_total", Help: "Times Grants (the job and the device, in storage) was asked whether a download may go on, by outcome.",
		}, []string{"result"}),
		grantsStale: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lwota_transfer_grants_stale_total", Help: "Blocks served on an expired grant while another request of the same download asked Grants again.",
		}),
	}
	for _, r := range []string{lookupGranted, lookupForbidden, lookupFailed} {
		m.grantLookups.WithLabelValues(r)
	}
	for _, r := range []string{reasonInvalid, reasonExpired, reasonForbidden, reasonUnavailable, reasonBadBlock, reasonMethod} {
		m.refused.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.blocks, m.bytes, m.cacheHits, m.cacheMisses, m.cacheEvictions, m.cacheBytes, m.blobReads, m.refused, m.grantLookups, m.grantsStale)
	}
	return m
}
