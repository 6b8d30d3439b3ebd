package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"syscall"

	"github.com/runnel-dev/runnel/internal/storage"
)

// LeaseDB is the embedded lease store: the leases of every application of
// one process in a pebble database of their own (through
// internal/storage), one key per lease ("lease/<application>/<shard>"), so
// a renewal writes (and fsyncs) one small value however many leases there
// are. The database is locked by the process that opens it: the embedded
// store coordinates the workers of one process (the pipelines of one
// runnel run or runnel serve); workers in several processes share a
// stream through a DynamoDB lease table instead.
type LeaseDB struct {
	eng *storage.Engine
	dir string
}

// ErrLeaseDBInUse means another process has the embedded lease store open.
var ErrLeaseDBInUse = errors.New("consumer: embedded lease store in use by another process")

// OpenLeaseDB opens (creating when missing) the embedded lease store in dir.
func OpenLeaseDB(ctx context.Context, dir string, logger *slog.Logger) (*LeaseDB, error) {
	eng, err := storage.Open(ctx, storage.Options{Dir: dir, Logger: logger,
		MemTableSize: storage.SmallMemTableSize, CacheSize: storage.SmallCacheSize})
	if err != nil {
		// The data-dir lock of internal/storage (or pebble's own).
		if errors.Is(err, syscall.EWOULDBLOCK) || strings.Contains(err.Error(), "in use by another") || strings.Contains(err.Error(), "lock held") {
			return nil, fmt.Errorf("%w: %s (the embedded store serves one process; to share a stream's shards among processes, give the pipeline a DynamoDB lease table: leases: {dynamodbTable: NAME})", ErrLeaseDBInUse, dir)
		}
		return nil, fmt.Errorf("opening the lease store in %s: %w", dir, err)
	}
	return &LeaseDB{eng: eng, dir: dir}, nil
}

// Close closes the database; the stores it returned must not be used after.
func (d *LeaseDB) Close() error { return d.eng.Close() }

// Store returns the lease store of one application.
func (d *LeaseDB) Store(ctx context.Context, application string) (*MemoryStore, error) {
	return NewMemoryStore(ctx, &dbPersistence{eng: d.eng, prefix: "lease/" + application + "/"})
}

// ImportJSON moves the leases of application from a JSON lease file (the
// format of earlier versions: one array of leases) into the database, when
// the file exists and the application has no lease in the database yet;
// the file is then renamed to path+".imported". It reports how many leases
// it imported.
func (d *LeaseDB) ImportJSON(ctx context.Context, application, path string) (int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var ls []Lease
	if err := json.Unmarshal(b, &ls); err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	p := &dbPersistence{eng: d.eng, prefix: "lease/" + application + "/"}
	have, err := p.Load(ctx)
	if err != nil {
		return 0, err
	}
	if len(have) > 0 {
		return 0, nil
	}
	b2 := d.eng.NewBatch()
	for _, l := range ls {
		v, err := json.Marshal(l)
		if err != nil {
			return 0, err
		}
		b2.SetMeta(p.prefix+l.Key, v)
	}
	if err := d.eng.Commit(b2); err != nil {
		return 0, err
	}
	return len(ls), os.Rename(path, path+".imported")
}

// dbPersistence keeps one application's leases in a LeaseDB.
type dbPersistence struct {
	eng    *storage.Engine
	prefix string
}

var _ Persistence = (*dbPersistence)(nil)

func (p *dbPersistence) Load(ctx context.Context) ([]Lease, error) {
	var out []Lease
	err := p.eng.ScanMeta(p.prefix, func(name string, v []byte) error {
		var l Lease
		if err := json.Unmarshal(v, &l); err != nil {
			return fmt.Errorf("lease %s: %w", name, err)
		}
		out = append(out, l)
		return nil
	})
	return out, err
}

func (p *dbPersistence) Put(ctx context.Context, l Lease) error {
	v, err := json.Marshal(l)
	if err != nil {
		return err
	}
	b := p.eng.NewBatch()
	b.SetMeta(p.prefix+l.Key, v)
	return p.eng.Commit(b)
}

func (p *dbPersistence) Delete(ctx context.Context, key string) error {
	b := p.eng.NewBatch()
	b.DeleteMeta(p.prefix + key)
	return p.eng.Commit(b)
}
