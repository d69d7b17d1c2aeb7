package console_test

import (
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
	"github.com/vigilarc/vigil/ui/uitest"
)

// mustConsoles starts a cluster of n nodes running the Service
// (monitoringtest) and serves each node's console and API on its own
// loopback port (uitest), as n appliances do.
func mustConsoles(t testing.TB, n int) (*monitoringtest.Cluster, []*uitest.Server) {
	t.Helper()
	c := monitoringtest.MustCluster(t, n, monitoringtest.Options{})
	srvs := make([]*uitest.Server, n)
	for i := range srvs {
		srvs[i] = uitest.MustServe(t, c.Node(i), uitest.Options{})
	}
	return c, srvs
}

// newEngine returns a gin engine as the appliance makes one.
func newEngine() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	return gin.New()
}
