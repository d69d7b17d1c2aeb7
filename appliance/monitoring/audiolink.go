package monitoring

// Signed audio links: a URL that downloads one alarm's audio without a
// console sign-in, for the people a close notification goes to
// (docs/notifications.md). A link names the alarm, an expiry and a link
// ID, and is signed with HMAC-SHA256 under one key held in the replicated
// state, so that a link made through one node works on every node:
//
//	/audio/<alarm id>/audio.wav?link=<link id>&exp=<unix seconds>&sig=<base64url HMAC>
//
// The key is 32 random bytes made once by the Service (CmdCreateLinkKey)
// and never shown: no reply, event or audit record carries it. A link is
// refused when its signature is wrong (checked in constant time), when it
// has expired, and when it was revoked (CmdRevokeAudioLink): the link
// records are the replicated revocation list. A download is a command
// (CmdAudioLinkDownload) that the state machine applies only if the link
// is neither expired nor revoked at the command's time, and that writes an
// audit record; so a revocation is decided in log order, the same on every
// node, and every download served is in the audit log.
//
// Keys (a prefix, once used, keeps its meaning forever):
//
//	linkkey                          linkKey: the HMAC key of audio links
//	audiolink/<link id>              AudioLink
//	ix/alarm-link/<alarm id>/<link>  the links of an alarm

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Key prefixes of audio links.
const (
	kLinkKey   = "linkkey"
	pAudioLink = "audiolink/"
	pAlarmLink = "ix/alarm-link/"
)

// Rules of audio links. They are part of the state machine's behaviour:
// changing them changes what replaying the log gives.
const (
	// LinkKeyBytes is the length of the HMAC key.
	LinkKeyBytes = 32
	// DefaultAudioLinkLife is how long a link works unless its maker
	// chooses otherwise.
	DefaultAudioLinkLife = 7 * 24 * time.Hour
	// MinAudioLinkLife and MaxAudioLinkLife bound a link's life.
	MinAudioLinkLife = 5 * time.Minute
	MaxAudioLinkLife = 90 * 24 * time.Hour
	// MaxAudioLinksPerAlarm bounds the links of one alarm, revoked ones
	// included.
	MaxAudioLinksPerAlarm = 50
	// maxLinkIDLen bounds a link's ID (the Service makes 16 hex digits).
	maxLinkIDLen = 64
	// MaxRemoteLen bounds the client address recorded with a download.
	MaxRemoteLen = 100
)

// AudioLinkPathPrefix begins the path of every audio link.
const AudioLinkPathPrefix = "/audio/"

// LinkActorPrefix begins the actor of a download by link: "link:<id>".
const LinkActorPrefix = "link:"

// audioLinkCatchUp bounds the wait for this node to catch up with the
// leader when it does not hold the link key yet.
const audioLinkCatchUp = 2 * time.Second

// MaxAudioLinkDownloads is how many downloads one link allows: each is a
// replicated, audited command, which a leaked link must not be able to
// repeat without bound.
const MaxAudioLinkDownloads = 100

// Refusals of audio links. Append only, like errors.go's codes.
const (
	// CodeBadLink refuses a link whose signature or fields are wrong.
	CodeBadLink Code = "bad_link"
	// CodeLinkExpired refuses a link after its expiry.
	CodeLinkExpired Code = "link_expired"
	// CodeLinkRevoked refuses a link that was revoked.
	CodeLinkRevoked Code = "link_revoked"
)

// linkKey is the HMAC key of audio links, as the state keeps it.
type linkKey struct {
	Key       []byte    `json:"key"`
	CreatedAt time.Time `json:"created_at"`
}

// AudioLink is a signed link to an alarm's audio. The signature is not
// stored: it is computed from the key whenever the link's URL is needed.
type AudioLink struct {
	ID        string    `json:"id"`
	AlarmID   string    `json:"alarm_id"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	Expires   time.Time `json:"expires"` // whole seconds: the URL carries Unix seconds
	// Note says what the link is for ("close notification to the
	// manager"), as its maker wrote it.
	Note       string    `json:"note,omitempty"`
	Revoked    bool      `json:"revoked"`
	RevokedBy  string    `json:"revoked_by,omitempty"`
	RevokedAt  time.Time `json:"revoked_at,omitzero"`
	Downloads  int       `json:"downloads"`
	LastAt     time.Time `json:"last_download_at,omitzero"`
	LastRemote string    `json:"last_download_from,omitempty"`
}

// Usable reports whether the link still works at now.
func (l *AudioLink) Usable(now time.Time) bool { return !l.Revoked && now.Before(l.Expires) }

// createLinkKeyCmd makes the HMAC key of audio links, once.
type createLinkKeyCmd struct {
	Header
	Key []byte `json:"key"`
}

// issueAudioLinkCmd records a new audio link.
type issueAudioLinkCmd struct {
	Header
	LinkID  string    `json:"link_id"`
	AlarmID string    `json:"alarm_id"`
	Expires time.Time `json:"expires"`
	Note    string    `json:"note,omitempty"`
}

// revokeAudioLinkCmd revokes an audio link for good.
type revokeAudioLinkCmd struct {
	Header
	LinkID string `json:"link_id"`
}

// audioLinkDownloadCmd records a download by link, whose signature the
// proposer has checked; the state machine checks the rest.
type audioLinkDownloadCmd struct {
	Header
	LinkID  string    `json:"link_id"`
	AlarmID string    `json:"alarm_id"`
	Expires time.Time `json:"expires"` // as the URL carried it
	Remote  string    `json:"remote,omitempty"`
}

// validLinkID reports why id cannot be a link's ID: 1 to maxLinkIDLen
// lowercase letters and digits.
func validLinkID(field, id string) error {
	switch {
	case id == "":
		return invalid(field, "must not be empty")
	case len(id) > maxLinkIDLen:
		return invalid(field, "is %d bytes, longer than %d", len(id), maxLinkIDLen)
	case strings.IndexFunc(id, func(r rune) bool { return !('a' <= r && r <= 'z' || '0' <= r && r <= '9') }) >= 0:
		return invalid(field, "%q must be lowercase letters and digits", id)
	}
	return nil
}

func getLinkKey(txn *badger.Txn) (*linkKey, error) {
	var k linkKey
	ok, err := getJSON(txn, kLinkKey, &k)
	if err != nil || !ok {
		return nil, err
	}
	return &k, nil
}

func getAudioLink(txn *badger.Txn, id string) (*AudioLink, error) {
	var l AudioLink
	ok, err := getJSON(txn, pAudioLink+id, &l)
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, ruleErr(CodeNotFound, "link_id", "no audio link %q", id)
	}
	return &l, nil
}

// applyCreateLinkKey stores the key. Rules: LinkKeyBytes long; there is no
// key yet (a key, once made, is never replaced: links signed with it would
// stop working).
func applyCreateLinkKey(c *applyCtx, body []byte) ([]byte, error) {
	var cmd createLinkKeyCmd
	if err := c.decode(body, &cmd); err != nil {
		return nil, err
	}
	if len(cmd.Key) != LinkKeyBytes {
		return nil, invalid("key", "is %d bytes, not %d", len(cmd.Key), LinkKeyBytes)
	}
	switch k, err := getLinkKey(c.txn); {
	case err != nil:
		return nil, err
	case k != nil:
		return nil, ruleErr(CodeConflict, "key", "the audio link key exists already (made %s UTC); it is never replaced",
			k.CreatedAt.UTC().Format("2006-01-02 15:04"))
	}
	if err := putJSON(c.txn, kLinkKey, linkKey{Key: cmd.Key, CreatedAt: c.now()}); err != nil {
		return nil, err
	}
	if err := c.audit(CmdCreateLinkKey, kLinkKey, "made the key of audio links"); err != nil {
		return nil, err
	}
	return []byte(`{}`), nil
}

// applyIssueAudioLink records a link. Rules: the key exists; the link ID
// is valid and not taken; the alarm exists; the expiry is whole seconds,
// from MinAudioLinkLife to MaxAudioLinkLife after now; the alarm has fewer
// than MaxAudioLinksPerAlarm links.
func applyIssueAudioLink(c *applyCtx, body []byte) ([]byte, error) {
	var cmd issueAudioLinkCmd
	if err := c.decode(body, &cmd); err != nil {
		return nil, err
	}
	if err := validLinkID("link_id", cmd.LinkID); err != nil {
		return nil, err
	}
	now := c.now()
	life := cmd.Expires.Sub(now)
	switch {
	case !cmd.Expires.Equal(cmd.Expires.Truncate(time.Second)):
		return nil, invalid("expires", "must be whole seconds: the link carries Unix seconds")
	case life < MinAudioLinkLife || life > MaxAudioLinkLife:
		return nil, invalid("expires", "%s is %s from now: a link works from %s to %s",
			cmd.Expires.UTC().Format(time.RFC3339), life.Round(time.Second), MinAudioLinkLife, MaxAudioLinkLife)
	case len(cmd.Note) > MaxTextLen:
		return nil, invalid("note", "is %d bytes, longer than %d", len(cmd.Note), MaxTextLen)
	}
	switch k, err := getLinkKey(c.txn); {
	case err != nil:
		return nil, err
	case k == nil:
		return nil, ruleErr(CodeConflict, "key", "there is no audio link key yet: the Service makes it first")
	}
	if ok, err := exists(c.txn, pAudioLink+cmd.LinkID); err != nil {
		return nil, err
	} else if ok {
		return nil, ruleErr(CodeConflict, "link_id", "audio link %q exists already", cmd.LinkID)
	}
	if _, err := getAlarm(c.txn, cmd.AlarmID); err != nil {
		return nil, err
	}
	n := 0
	if err := scanPrefix(c.txn, pAlarmLink+cmd.AlarmID+"/", false, func(_, _ []byte) (bool, error) {
		n++
		return true, nil
	}); err != nil {
		return nil, err
	}
	if n >= MaxAudioLinksPerAlarm {
		return nil, ruleErr(CodeConflict, "alarm_id", "alarm %s has %d audio links already, the most kept", cmd.AlarmID, n)
	}

	// Every rule has been checked: write.
	l := AudioLink{ID: cmd.LinkID, AlarmID: cmd.AlarmID, CreatedBy: c.hdr.Actor, CreatedAt: now, Expires: cmd.Expires.UTC(), Note: cmd.Note}
	if err := putJSON(c.txn, pAudioLink+l.ID, &l); err != nil {
		return nil, err
	}
	if err := setIndex(c.txn, []byte(pAlarmLink+l.AlarmID+"/"+l.ID)); err != nil {
		return nil, err
	}
	if err := c.audit(CmdIssueAudioLink, "alarm/"+l.AlarmID,
		fmt.Sprintf("audio link %s made, expires %s", l.ID, l.Expires.Format(time.RFC3339))); err != nil {
		return nil, err
	}
	ev := l
	c.emit(Event{Type: EventAudioLinkIssued, AudioLink: &ev})
	return json.Marshal(&l)
}

// applyRevokeAudioLink revokes a link. Revoking a revoked link changes
// nothing.
func applyRevokeAudioLink(c *applyCtx, body []byte) ([]byte, error) {
	var cmd revokeAudioLinkCmd
	if err := c.decode(body, &cmd); err != nil {
		return nil, err
	}
	if err := validLinkID("link_id", cmd.LinkID); err != nil {
		return nil, err
	}
	l, err := getAudioLink(c.txn, cmd.LinkID)
	if err != nil {
		return nil, err
	}
	if l.Revoked {
		return json.Marshal(l)
	}
	l.Revoked, l.RevokedBy, l.RevokedAt = true, c.hdr.Actor, c.now()
	if err := putJSON(c.txn, pAudioLink+l.ID, l); err != nil {
		return nil, err
	}
	if err := c.audit(CmdRevokeAudioLink, "alarm/"+l.AlarmID, "audio link "+l.ID+" revoked"); err != nil {
		return nil, err
	}
	ev := *l
	c.emit(Event{Type: EventAudioLinkRevoked, AudioLink: &ev})
	return json.Marshal(l)
}

// applyAudioLinkDownload records a download. Rules: the link exists and
// names the alarm and the expiry that the URL carried; it is not revoked;
// the command's time is before the expiry.
func applyAudioLinkDownload(c *applyCtx, body []byte) ([]byte, error) {
	var cmd audioLinkDownloadCmd
	if err := c.decode(body, &cmd); err != nil {
		return nil, err
	}
	if err := validLinkID("link_id", cmd.LinkID); err != nil {
		return nil, err
	}
	if len(cmd.Remote) > MaxRemoteLen {
		return nil, invalid("remote", "is %d bytes, longer than %d", len(cmd.Remote), MaxRemoteLen)
	}
	l, err := getAudioLink(c.txn, cmd.LinkID)
	switch {
	case err != nil:
		return nil, err
	case l.AlarmID != cmd.AlarmID || !l.Expires.Equal(cmd.Expires):
		return nil, ruleErr(CodeBadLink, "link_id", "audio link %s is for another alarm or expiry", l.ID)
	case l.Revoked:
		return nil, ruleErr(CodeLinkRevoked, "link_id", "audio link %s was revoked at %s UTC", l.ID, l.RevokedAt.UTC().Format("2006-01-02 15:04"))
	case !c.now().Before(l.Expires):
		return nil, ruleErr(CodeLinkExpired, "link_id", "audio link %s expired at %s UTC", l.ID, l.Expires.UTC().Format("2006-01-02 15:04"))
	}
	l.Downloads++
	l.LastAt, l.LastRemote = c.now(), cmd.Remote
	if err := putJSON(c.txn, pAudioLink+l.ID, l); err != nil {
		return nil, err
	}
	detail := fmt.Sprintf("audio downloaded by link %s (download %d)", l.ID, l.Downloads)
	if cmd.Remote != "" {
		detail += " from " + cmd.Remote
	}
	if err := c.audit(CmdAudioLinkDownload, "alarm/"+l.AlarmID, detail); err != nil {
		return nil, err
	}
	ev := *l
	c.emit(Event{Type: EventAudioDownloaded, AudioLink: &ev})
	return json.Marshal(l)
}

// --- Signing ---

// linkMessage is what a link's signature covers.
func linkMessage(linkID, alarmID string, exp int64) []byte {
	return []byte("vigil audio link v1\n" + linkID + "\n" + alarmID + "\n" + strconv.FormatInt(exp, 10))
}

// signLink returns the signature of a link under key, base64url without
// padding.
func signLink(key []byte, linkID, alarmID string, exp int64) string {
	m := hmac.New(sha256.New, key)
	m.Write(linkMessage(linkID, alarmID, exp))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// audioLinkPath is the path and query of link l signed with key.
func audioLinkPath(key []byte, l *AudioLink) string {
	exp := l.Expires.Unix()
	q := url.Values{}
	q.Set("link", l.ID)
	q.Set("exp", strconv.FormatInt(exp, 10))
	q.Set("sig", signLink(key, l.ID, l.AlarmID, exp))
	return AudioLinkPathPrefix + url.PathEscape(l.AlarmID) + "/audio.wav?" + q.Encode()
}

// --- The Service ---

// IssuedAudioLink is a link just made, with its path (AudioLinkPath).
type IssuedAudioLink struct {
	Link *AudioLink `json:"link"`
	Path string     `json:"path"`
}

// EnsureAudioLinkKey makes the audio link key if the state has none yet.
// Every node may call it at once: the command has one fixed ID, so it is
// applied once, and a key that exists is never replaced.
func (s *Service) EnsureAudioLinkKey(ctx context.Context) error {
	var k *linkKey
	if err := s.view(func(txn *badger.Txn) (err error) { k, err = getLinkKey(txn); return err }); err != nil || k != nil {
		return err
	}
	key := make([]byte, LinkKeyBytes)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("cannot make the audio link key: %w", err)
	}
	_, err := s.propose(ctx, "audio-link-key", CmdCreateLinkKey, createLinkKeyCmd{Header: s.header("system"), Key: key})
	if isConflict(err) {
		return nil // made by another node in the meantime
	}
	return err
}

func isConflict(err error) bool {
	var re *RuleError
	return errors.As(err, &re) && re.Code == CodeConflict
}

// IssueAudioLink makes a link to alarm alarmID's audio that works for life
// (0: DefaultAudioLinkLife), and returns it with its path. actor is who
// makes it; note says what it is for. A retry with the same cmdID returns
// the link the first attempt made.
//
// This is the hook of the close notification (docs/notifications.md): the
// outbox calls it with the alarm of an EventAlarmClosed, and puts the
// node's console address before the path.
func (s *Service) IssueAudioLink(ctx context.Context, cmdID, actor, alarmID string, life time.Duration, note string) (*IssuedAudioLink, error) {
	if strings.TrimSpace(actor) == "" {
		return nil, invalid("actor", "who makes the audio link is missing")
	}
	if life == 0 {
		life = DefaultAudioLinkLife
	}
	if life < MinAudioLinkLife || life > MaxAudioLinkLife {
		return nil, invalid("expires_in", "%s is not from %s to %s", life, MinAudioLinkLife, MaxAudioLinkLife)
	}
	if err := s.EnsureAudioLinkKey(ctx); err != nil {
		return nil, err
	}
	idb := make([]byte, 8)
	if _, err := rand.Read(idb); err != nil {
		return nil, fmt.Errorf("cannot make an audio link ID: %w", err)
	}
	h := s.header(actor)
	cmd := issueAudioLinkCmd{Header: h, LinkID: hex.EncodeToString(idb), AlarmID: alarmID,
		Expires: h.At.Add(life).Truncate(time.Second).UTC(), Note: note}
	res, err := s.propose(ctx, cmdID, CmdIssueAudioLink, cmd)
	if err != nil {
		return nil, err
	}
	l, err := decodeResponse[AudioLink](res.Response)
	if err != nil {
		return nil, err
	}
	path, err := s.AudioLinkPath(ctx, l)
	if err != nil {
		return nil, err
	}
	return &IssuedAudioLink{Link: l, Path: path}, nil
}

// AudioLinkPath returns the path and query of link l ("/audio/<alarm
// id>/audio.wav?link=&exp=&sig="): a console address before it makes the
// URL. Whoever may see the link's alarm may see its path; the key itself
// is never returned.
func (s *Service) AudioLinkPath(ctx context.Context, l *AudioLink) (string, error) {
	key, err := s.linkKey(ctx)
	if err != nil {
		return "", err
	}
	return audioLinkPath(key, l), nil
}

// linkKey returns the key from this node's state, waiting once (at most
// audioLinkCatchUp) for this node to catch up when it has none yet.
func (s *Service) linkKey(ctx context.Context) ([]byte, error) {
	var k *linkKey
	read := func(txn *badger.Txn) (err error) { k, err = getLinkKey(txn); return err }
	err := s.view(read)
	if w, ok := s.cluster.(appliedWaiter); ok && err == nil && k == nil {
		wctx, cancel := context.WithTimeout(ctx, audioLinkCatchUp)
		werr := w.WaitApplied(wctx)
		cancel()
		if werr != nil {
			return nil, fmt.Errorf("this node holds no audio link key, and cannot catch up with the leader to look again: %w", werr)
		}
		err = s.view(read)
	}
	switch {
	case err != nil:
		return nil, err
	case k == nil:
		return nil, ruleErr(CodeBadLink, "sig", "no audio link was ever made here")
	}
	return k.Key, nil
}

// RevokeAudioLink revokes a link on every node, for good, and returns it.
// Revoking a revoked link changes nothing.
func (s *Service) RevokeAudioLink(ctx context.Context, cmdID, actor, linkID string) (*AudioLink, error) {
	if strings.TrimSpace(actor) == "" {
		return nil, invalid("actor", "who revokes the audio link is missing")
	}
	if err := validLinkID("link_id", linkID); err != nil {
		return nil, err
	}
	res, err := s.propose(ctx, cmdID, CmdRevokeAudioLink, revokeAudioLinkCmd{Header: s.header(actor), LinkID: linkID})
	if err != nil {
		return nil, err
	}
	return decodeResponse[AudioLink](res.Response)
}

// AudioLinks returns the links of an alarm, oldest first.
func (s *Service) AudioLinks(alarmID string) ([]AudioLink, error) {
	out := []AudioLink{}
	err := s.view(func(txn *badger.Txn) error {
		if _, err := getAlarm(txn, alarmID); err != nil {
			return err
		}
		return scanPrefix(txn, pAlarmLink+alarmID+"/", false, func(key, _ []byte) (bool, error) {
			l, err := getAudioLink(txn, lastSegment(key))
			if err != nil {
				return false, err
			}
			out = append(out, *l)
			return true, nil
		})
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b AudioLink) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// AudioLink returns one link.
func (s *Service) AudioLink(linkID string) (*AudioLink, error) {
	if err := validLinkID("link_id", linkID); err != nil {
		return nil, err
	}
	var l *AudioLink
	err := s.view(func(txn *badger.Txn) (err error) { l, err = getAudioLink(txn, linkID); return err })
	return l, err
}

// OpenAudioLink checks a link as a URL carried it (the alarm, the link ID,
// the expiry in Unix seconds and the signature) and records the download
// from remote, which the state machine refuses if the link has expired or
// was revoked. A wrong signature, compared in constant time, is refused
// before anything is proposed. On success the caller serves the alarm's
// audio; every refusal is a *RuleError (CodeBadLink, CodeLinkExpired,
// CodeLinkRevoked).
func (s *Service) OpenAudioLink(ctx context.Context, alarmID, linkID, exp, sig, remote string) (*AudioLink, error) {
	if validLinkID("link", linkID) != nil || alarmID == "" {
		return nil, ruleErr(CodeBadLink, "link", "the audio link is malformed: it has no valid link ID")
	}
	e, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || e <= 0 {
		return nil, ruleErr(CodeBadLink, "exp", "the audio link is malformed: exp %q is not Unix seconds", exp)
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || len(got) != sha256.Size {
		return nil, ruleErr(CodeBadLink, "sig", "the audio link's signature is malformed")
	}
	key, err := s.linkKey(ctx)
	if err != nil {
		return nil, err
	}
	m := hmac.New(sha256.New, key)
	m.Write(linkMessage(linkID, alarmID, e))
	if !hmac.Equal(m.Sum(nil), got) {
		return nil, ruleErr(CodeBadLink, "sig", "the audio link's signature is wrong: the link was changed or not made here")
	}
	expires := time.Unix(e, 0).UTC()
	if !s.Now().Before(expires) {
		return nil, ruleErr(CodeLinkExpired, "exp", "audio link %s expired at %s UTC", linkID, expires.Format("2006-01-02 15:04"))
	}
	// Whoever holds a link (a forwarded mail) can call this as often as
	// they like, and each download is a replicated command: a revoked or
	// used-up link is refused from this node's state, writing nothing.
	if l, err := s.AudioLink(linkID); err == nil {
		switch {
		case l.Revoked:
			return nil, ruleErr(CodeLinkRevoked, "link_id", "audio link %s was revoked at %s UTC", l.ID, l.RevokedAt.UTC().Format("2006-01-02 15:04"))
		case l.Downloads >= MaxAudioLinkDownloads:
			return nil, ruleErr(CodeLinkExpired, "link_id", "audio link %s was used %d times, its most: ask for a new link", l.ID, l.Downloads)
		}
	}
	if len(remote) > MaxRemoteLen {
		remote = remote[:MaxRemoteLen]
	}
	idb := make([]byte, 8)
	if _, err := rand.Read(idb); err != nil {
		return nil, fmt.Errorf("cannot make a command ID: %w", err)
	}
	res, err := s.propose(ctx, "download-"+linkID+"-"+hex.EncodeToString(idb), CmdAudioLinkDownload,
		audioLinkDownloadCmd{Header: s.header(LinkActorPrefix + linkID), LinkID: linkID, AlarmID: alarmID, Expires: expires, Remote: remote})
	if err != nil {
		return nil, err
	}
	return decodeResponse[AudioLink](res.Response)
}
