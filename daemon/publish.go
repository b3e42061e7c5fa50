package daemon

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"

	"github.com/cmord/cmord/archive"
)

// ArchiveBuilt stores the content and indexes it (direction out) inside tx. The blob
// is written before the transaction; if the transaction rolls back the blob is an
// unindexed orphan, which verify reports and nothing uses.
func (d *Daemon) ArchiveBuilt(ctx context.Context, tx *sql.Tx, b Built, source string) (archive.File, error) {
	hash, size := b.Hash, b.Size
	if hash == "" {
		var err error
		if hash, size, err = d.Store.Blobs.Put(bytes.NewReader(b.Content)); err != nil {
			return archive.File{}, err
		}
	}
	at := b.At
	if at.IsZero() {
		at = d.now()
	}
	res, err := d.Store.IngestTx(ctx, tx, archive.IngestRequest{Source: source, Name: b.Name, Direction: "out",
		Kind: b.Kind, Inputs: b.Inputs, Meta: b.Meta, At: at}, hash, size)
	if err != nil {
		return archive.File{}, err
	}
	return res.File, nil
}

// QueueToSII queues the publication of an archived flow file to every SFTP endpoint
// with an outbound directory (normally one: the SII), inside tx.
func (d *Daemon) QueueToSII(ctx context.Context, tx *sql.Tx, f archive.File) error {
	cfg := d.Config()
	n := 0
	for _, ep := range cfg.SFTP {
		if ep.OutboundDir == "" {
			continue
		}
		if _, err := d.Store.QueueDelivery(ctx, tx, archive.Delivery{FileID: f.ID, Target: "sftp:" + ep.Name,
			RemoteDir: ep.OutboundDir, RemoteName: f.Name, CreatedAt: d.now()}); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("no SFTP endpoint has an outbound_dir: %s cannot be published", f.Name)
	}
	return nil
}

// QueueToBilling queues the publication of an archived export into the billing
// outbound folder, inside tx.
func (d *Daemon) QueueToBilling(ctx context.Context, tx *sql.Tx, f archive.File) error {
	dir := d.Config().Outbound.BillingDir
	if dir == "" {
		return fmt.Errorf("outbound.billing_dir is not configured: %s cannot be published", f.Name)
	}
	_, err := d.Store.QueueDelivery(ctx, tx, archive.Delivery{FileID: f.ID, Target: "dir:" + dir, RemoteDir: dir, RemoteName: f.Name, CreatedAt: d.now()})
	return err
}
