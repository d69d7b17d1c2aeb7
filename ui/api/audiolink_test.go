package api_test

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
	"github.com/vigilarc/vigil/cluster/clustertest"
	"github.com/vigilarc/vigil/ui/api"
	"github.com/vigilarc/vigil/ui/incident/incidenttest"
	"github.com/vigilarc/vigil/ui/uitest"
)

// getPublic fetches path from n with no credentials at all.
func getPublic(t *testing.T, n *apiNode, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(n.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// downloads counts the audit records of downloads of alarm id on n.
func downloads(t *testing.T, n *apiNode, id string) int {
	t.Helper()
	_, recs, err := n.svc().DiagAudit("alarm/" + id)
	if err != nil {
		t.Fatal(err)
	}
	k := 0
	for _, r := range recs {
		if r.Command == monitoring.CmdAudioLinkDownload.String() {
			k++
		}
	}
	return k
}

// TestAudioLink_WorksOnEveryNodeUntilRevokedOrExpired: on a three-node
// cluster an operator makes a link through node 0's API; anyone holding
// it downloads the alarm's audio from node 1 without signing in, and each
// download is in the audit log of node 2; a changed signature, expiry,
// alarm or link ID is refused (403), and so is the link once revoked
// through node 2 (410) and an unrevoked one after its expiry (410), with
// no download recorded for any refusal.
func TestAudioLink_WorksOnEveryNodeUntilRevokedOrExpired(t *testing.T) {
	if testing.Short() {
		t.Skip("three-node cluster test")
	}
	clk := incidenttest.NewClock(time.Now().Truncate(time.Second))
	c := monitoringtest.MustCluster(t, 3, monitoringtest.Options{Setup: func(s *monitoring.Service) { s.Now = clk.Now }})
	nodes := make([]*apiNode, c.Len())
	for i := range nodes {
		nodes[i] = &apiNode{Server: uitest.MustServe(t, c.Node(i), uitest.Options{})}
	}
	pcm := bytes.Repeat([]byte{1, 2, 3, 4}, 4000)
	id := audioAlarm(t, nodes[0], "raise", map[uint64][]byte{0: pcm}, []uint64{0},
		monitoring.AudioChunkRequest{Codec: monitoring.CodecPCM, SampleRate: 8000, Channels: 1})
	op := mustToken(t, nodes[0], "olivia", monitoring.RoleOperator)

	// Bad requests name their field.
	code, raw := sendAs(t, nodes[0], op, "POST", "/api/v1/alarms/"+id+"/audio-links", obj{"id": "l0", "expires_in": "1m"}, nil)
	if code != http.StatusBadRequest || !strings.Contains(raw, `"field":"expires_in"`) {
		t.Fatalf("a link of one minute: %d %s", code, raw)
	}
	mustSendAs(t, nodes[0], op, http.StatusNotFound, "POST", "/api/v1/alarms/nope/audio-links", obj{"id": "l00"}, nil)

	var made monitoring.IssuedAudioLink
	mustSendAs(t, nodes[0], op, http.StatusCreated, "POST", "/api/v1/alarms/"+id+"/audio-links",
		obj{"id": "l1", "note": "for the manager"}, &made)
	if made.Link.CreatedBy != "token:olivia" || !made.Link.Expires.Equal(clk.Now().Add(monitoring.DefaultAudioLinkLife)) ||
		!strings.HasPrefix(made.Path, "/audio/"+id+"/audio.wav?") {
		t.Fatalf("made %+v", made)
	}
	var again monitoring.IssuedAudioLink // a retry returns the first link
	mustSendAs(t, nodes[0], op, http.StatusCreated, "POST", "/api/v1/alarms/"+id+"/audio-links", obj{"id": "l1"}, &again)
	if again.Link.ID != made.Link.ID || again.Path != made.Path {
		t.Fatalf("a retry made another link: %+v", again)
	}

	var got []byte
	clustertest.PollUntil(t, 5*time.Second, "the link on node 1", func() bool {
		var code int
		code, got = getPublic(t, nodes[1], made.Path)
		return code == http.StatusOK
	})
	if len(got) != 44+len(pcm) || !bytes.Equal(got[44:], pcm) || string(got[:4]) != "RIFF" {
		t.Fatalf("node 1 served %d bytes, want a WAV of %d", len(got), 44+len(pcm))
	}
	clustertest.PollUntil(t, 5*time.Second, "the download in node 2's audit log", func() bool { return downloads(t, nodes[2], id) == 1 })

	u, _ := url.Parse(made.Path)
	q := u.Query()
	tamper := func(key, val string) string {
		v := url.Values{}
		for k := range q {
			v.Set(k, q.Get(k))
		}
		v.Set(key, val)
		return u.Path + "?" + v.Encode()
	}
	sig := q.Get("sig")
	flipped := string(rune(sig[0]^1)) + sig[1:]
	for name, path := range map[string]string{
		"signature":     tamper("sig", flipped),
		"no signature":  tamper("sig", ""),
		"expiry":        tamper("exp", "99999999999"),
		"link ID":       tamper("link", "0123456789abcdef"),
		"another alarm": strings.Replace(made.Path, "/audio/"+id+"/", "/audio/other/", 1),
	} {
		if code, body := getPublic(t, nodes[1], path); code != http.StatusForbidden || !strings.Contains(string(body), "bad_link") {
			t.Errorf("tampered %s: %d %s", name, code, body)
		}
	}
	if code, _ := getPublic(t, nodes[1], strings.Replace(made.Path, "audio.wav", "audio.mp3", 1)); code != http.StatusNotFound {
		t.Errorf("audio.mp3: %d", code)
	}

	// The links of the alarm, then a revocation through node 2.
	var list api.AudioLinksResponse
	mustSendAs(t, nodes[2], op, http.StatusOK, "GET", "/api/v1/alarms/"+id+"/audio-links", nil, &list)
	if len(list.Links) != 1 || list.Links[0].Downloads != 1 || list.Links[0].Path != made.Path {
		t.Fatalf("links %+v", list)
	}
	mustSendAs(t, nodes[2], op, http.StatusOK, "POST", "/api/v1/audio-links/"+made.Link.ID+"/revoke", obj{"id": "rv1"}, nil)
	code, body := getPublic(t, nodes[1], made.Path)
	if code != http.StatusGone || !strings.Contains(string(body), "link_revoked") {
		t.Fatalf("revoked link: %d %s", code, body)
	}

	// Expiry: a link of five minutes works, then not from its expiry on.
	var short monitoring.IssuedAudioLink
	mustSendAs(t, nodes[1], op, http.StatusCreated, "POST", "/api/v1/alarms/"+id+"/audio-links", obj{"id": "l2", "expires_in": "5m"}, &short)
	clk.Set(clk.Now().Add(5*time.Minute - time.Second))
	if code, _ := getPublic(t, nodes[0], short.Path); code != http.StatusOK {
		t.Fatalf("before its expiry: %d", code)
	}
	clk.Set(clk.Now().Add(time.Second))
	code, body = getPublic(t, nodes[0], short.Path)
	if code != http.StatusGone || !strings.Contains(string(body), "link_expired") {
		t.Fatalf("expired link: %d %s", code, body)
	}
	if n := downloads(t, nodes[0], id); n != 2 {
		t.Fatalf("%d downloads audited, want 2 (refusals record none)", n)
	}
	// The three states agree, links, revocations and downloads included.
	clustertest.PollUntil(t, 5*time.Second, "the three nodes' state hashes to agree", func() bool {
		var first monitoring.DiagState
		for i, n := range nodes {
			st, err := n.svc().DiagState()
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				first = st
			} else if st.AppliedIndex != first.AppliedIndex || !bytes.Equal(st.Hash, first.Hash) {
				return false
			}
		}
		return true
	})
}

// TestAudioLink_LeakedLinkCostsLittle: whoever holds a link can call it as
// often as they like. A revoked link is refused from the node's state
// without a command, and a link allows MaxAudioLinkDownloads downloads,
// then is refused the same way.
func TestAudioLink_LeakedLinkCostsLittle(t *testing.T) {
	c := monitoringtest.MustCluster(t, 1, monitoringtest.Options{})
	node := &apiNode{Server: uitest.MustServe(t, c.Node(0), uitest.Options{})}
	id := audioAlarm(t, node, "raise", map[uint64][]byte{0: {1, 2, 3, 4}}, []uint64{0},
		monitoring.AudioChunkRequest{Codec: monitoring.CodecPCM, SampleRate: 8000, Channels: 1})
	op := mustToken(t, node, "olivia", monitoring.RoleOperator)
	applied := func() uint64 {
		st, err := node.svc().DiagState()
		if err != nil {
			t.Fatal(err)
		}
		return st.AppliedIndex
	}

	var used monitoring.IssuedAudioLink
	mustSendAs(t, node, op, http.StatusCreated, "POST", "/api/v1/alarms/"+id+"/audio-links", obj{"id": "lu"}, &used)
	for i := range monitoring.MaxAudioLinkDownloads {
		if code, _ := getPublic(t, node, used.Path); code != http.StatusOK {
			t.Fatalf("download %d: %d", i+1, code)
		}
	}
	before := applied()
	code, body := getPublic(t, node, used.Path)
	if code != http.StatusGone || !strings.Contains(string(body), "link_expired") || !strings.Contains(string(body), "ask for a new link") {
		t.Fatalf("a download past the most: %d %s", code, body)
	}
	if after := applied(); after != before {
		t.Fatalf("the refused download wrote %d entries", after-before)
	}

	var revoked monitoring.IssuedAudioLink
	mustSendAs(t, node, op, http.StatusCreated, "POST", "/api/v1/alarms/"+id+"/audio-links", obj{"id": "lr"}, &revoked)
	mustSendAs(t, node, op, http.StatusOK, "POST", "/api/v1/audio-links/"+revoked.Link.ID+"/revoke", obj{"id": "rv"}, nil)
	before = applied()
	for range 20 {
		if code, body := getPublic(t, node, revoked.Path); code != http.StatusGone || !strings.Contains(string(body), "link_revoked") {
			t.Fatalf("revoked link: %d %s", code, body)
		}
	}
	if after := applied(); after != before {
		t.Fatalf("20 calls of a revoked link wrote %d entries", after-before)
	}
	if n := downloads(t, node, id); n != monitoring.MaxAudioLinkDownloads {
		t.Fatalf("%d downloads audited, want %d", n, monitoring.MaxAudioLinkDownloads)
	}
}

// TestReports_DueSignedOffAndPDF: the demo incident's report is listed as
// due, not overdue, until its due time; a supervisor signs it off through
// the API, after which it is listed as signed off and changes no more; its
// PDF is served; an operator may not see reports.
func TestReports_DueSignedOffAndPDF(t *testing.T) {
	clk := incidenttest.NewClock(incidenttest.Start)
	node := monitoringtest.MustService(t, monitoringtest.Options{Setup: func(s *monitoring.Service) { s.Now = clk.Now }})
	n := &apiNode{Server: uitest.MustServe(t, node, uitest.Options{})}
	inc, err := incidenttest.Demo(t.Context(), n.svc(), clk)
	if err != nil {
		t.Fatal(err)
	}
	sup := mustToken(t, n, "sam", monitoring.RoleSupervisor)
	op := mustToken(t, n, "olivia", monitoring.RoleOperator)
	mustSendAs(t, n, op, http.StatusForbidden, "GET", "/api/v1/reports", nil, nil)
	var list api.ReportsResponse
	mustSendAs(t, n, sup, http.StatusOK, "GET", "/api/v1/reports", nil, &list)
	if len(list.Due) != 1 || list.Due[0].AlarmID != inc.AlarmID || len(list.SignedOff) != 0 {
		t.Fatalf("reports %+v", list)
	}
	// Overdue is judged by the wall clock of the API; the demo is in 2026's November.
	if want := time.Now().After(list.Due[0].DueAt); list.Due[0].Overdue != want {
		t.Fatalf("overdue %v, want %v", list.Due[0].Overdue, want)
	}
	code, raw := sendAs(t, n, sup, "POST", "/api/v1/reports/"+inc.AlarmID+"/sign-off", obj{"id": "s0", "recommendations": " "}, nil)
	if code != http.StatusBadRequest || !strings.Contains(raw, `"field":"recommendations"`) {
		t.Fatalf("sign-off without recommendations: %d %s", code, raw)
	}
	var r monitoring.Report
	mustSendAs(t, n, sup, http.StatusOK, "POST", "/api/v1/reports/"+inc.AlarmID+"/sign-off",
		obj{"id": "s1", "recommendations": "Two-person visits to this address."}, &r)
	if r.State != monitoring.ReportSignedOff || r.SignedOffBy != "token:sam" {
		t.Fatalf("signed off %+v", r)
	}
	mustSendAs(t, n, sup, http.StatusConflict, "POST", "/api/v1/reports/"+inc.AlarmID+"/recommendations", obj{"id": "s2", "recommendations": "x"}, nil)
	mustSendAs(t, n, sup, http.StatusOK, "GET", "/api/v1/reports", nil, &list)
	if len(list.Due) != 0 || len(list.SignedOff) != 1 {
		t.Fatalf("after the sign-off: %+v", list)
	}
	req, _ := http.NewRequest("GET", n.URL+"/api/v1/reports/"+inc.AlarmID+"/report.pdf", nil)
	req.Header.Set("Authorization", "Bearer "+sup)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	pdf, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/pdf" || !bytes.HasPrefix(pdf, []byte("%PDF-")) {
		t.Fatalf("report.pdf: %d %s, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(pdf))
	}
}
