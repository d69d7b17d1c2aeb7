package api

// GET /api/v1/backup (admin): this node's whole state at one applied index,
// as the payload of a backup file (internal/backupfile): its description,
// then the snapshot stream. It is not encrypted here: `vigil backup`
// encrypts it on the admin's machine with the admin's key, which never
// reaches the appliance. The connection is the API's (HTTPS outside
// loopback), and the state holds only hashes of secrets.

import (
	"encoding/hex"
	"io"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilarc/vigil/internal/backupfile"
)

// backupService is what the backup route needs from the monitoring
// Service.
type backupService interface {
	Backup(w io.Writer, head func(applied uint64, hash []byte) error) error
}

// GET /api/v1/backup.
func (a *api) backup(c *gin.Context) {
	started := false
	err := a.svc.Backup(c.Writer, func(applied uint64, hash []byte) error {
		c.Header("Content-Type", "application/octet-stream")
		c.Header("Cache-Control", "no-store")
		c.Status(http.StatusOK)
		started = true
		return backupfile.WriteMeta(c.Writer, backupfile.Meta{
			Format: 1, AppliedIndex: applied, StateHash: hex.EncodeToString(hash),
			Created: time.Now().UTC(), NodeID: a.cluster.Status().NodeID, Source: "api",
		})
	})
	if err == nil {
		return
	}
	if !started {
		writeError(c, err)
		return
	}
	// The stream is cut short: the client's check of its checksum fails.
	a.logger.Warn("backup stream failed", "error", err)
	c.Abort()
}
