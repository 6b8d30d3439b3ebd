package metrics

import (
	"io/fs"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DirSize is a prometheus.Collector of the bytes a directory tree takes
// (the sum of its regular files' sizes, as du --apparent-size counts them).
// Walking a large data directory on every scrape would be wasteful, so the
// figure is cached for maxAge.
type DirSize struct {
	dir    string
	maxAge time.Duration
	desc   *prometheus.Desc
	files  *prometheus.Desc

	mu      sync.Mutex
	at      time.Time
	size    int64
	n       int64
	walkErr error
}

var _ prometheus.Collector = (*DirSize)(nil)

// NewDirSize returns the collector of dir's size, walked at most once per
// maxAge.
func NewDirSize(dir string, maxAge time.Duration) *DirSize {
	return &DirSize{
		dir: dir, maxAge: maxAge,
		desc: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "storage", "size_bytes"),
			"Bytes of the files in the data directory (records, write-ahead log, pipeline state), measured at most every "+maxAge.String()+".", nil, nil),
		files: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "storage", "files"),
			"Files in the data directory.", nil, nil),
	}
}

// Size returns the directory's size and file count, walking it when the
// cached figure is older than maxAge.
func (d *DirSize) Size() (bytes, files int64, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.at.IsZero() || time.Since(d.at) >= d.maxAge {
		var size, n int64
		// Files vanish under a running engine (compactions): skip them.
		d.walkErr = filepath.WalkDir(d.dir, func(_ string, e fs.DirEntry, err error) error {
			if err != nil || !e.Type().IsRegular() {
				return nil
			}
			if info, err := e.Info(); err == nil {
				size += info.Size()
				n++
			}
			return nil
		})
		d.size, d.n, d.at = size, n, time.Now()
	}
	return d.size, d.n, d.walkErr
}

// Describe implements prometheus.Collector.
func (d *DirSize) Describe(ch chan<- *prometheus.Desc) { ch <- d.desc; ch <- d.files }

// Collect implements prometheus.Collector.
func (d *DirSize) Collect(ch chan<- prometheus.Metric) {
	size, n, err := d.Size()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(d.desc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(d.desc, prometheus.GaugeValue, float64(size))
	ch <- prometheus.MustNewConstMetric(d.files, prometheus.GaugeValue, float64(n))
}
