package storage

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// walCategory is the category pebble creates its write-ahead log files
// with.
const walCategory vfs.DiskWriteCategory = "pebble-wal"

// walFS is the filesystem pebble sees. It wraps the write-ahead log's
// files so that
//
//   - a failed write or sync of the log latches the engine before pebble
//     sees the error, so no later batch is handed to pebble's (then
//     broken) commit pipeline;
//   - with noSync the log's syncs do nothing. Batches are still committed
//     with pebble.Sync, so an append returns only after its log bytes were
//     written to the operating system (pebble.NoSync would return while
//     they sit in pebble's own buffer, which a crash of the process
//     loses).
type walFS struct {
	vfs.FS
	noSync bool
	health *health
}

func (fs *walFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	return fs.wrap(f, name, category, err)
}

func (fs *walFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	return fs.wrap(f, newname, category, err)
}

func (fs *walFS) Unwrap() vfs.FS { return fs.FS }

func (fs *walFS) wrap(f vfs.File, name string, category vfs.DiskWriteCategory, err error) (vfs.File, error) {
	if category != walCategory {
		return f, err
	}
	if err != nil {
		fs.health.fail(fmt.Errorf("creating write-ahead log %s: %w", name, err))
		return nil, err
	}
	return &walFile{File: f, name: name, fs: fs}, nil
}

type walFile struct {
	vfs.File
	name string
	fs   *walFS
}

func (f *walFile) failed(op string, err error) error {
	if err != nil {
		f.fs.health.fail(fmt.Errorf("%s write-ahead log %s: %w", op, f.name, err))
	}
	return err
}

func (f *walFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	return n, f.failed("writing", err)
}

func (f *walFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(p, off)
	return n, f.failed("writing", err)
}

func (f *walFile) Sync() error {
	if f.fs.noSync {
		return nil
	}
	return f.failed("syncing", f.File.Sync())
}

func (f *walFile) SyncData() error {
	if f.fs.noSync {
		return nil
	}
	return f.failed("syncing", f.File.SyncData())
}

func (f *walFile) SyncTo(length int64) (bool, error) {
	if f.fs.noSync {
		return true, nil
	}
	full, err := f.File.SyncTo(length)
	return full, f.failed("syncing", err)
}

// FS is the filesystem interface Options.FS takes: pebble's vfs.FS.
type FS = vfs.FS
