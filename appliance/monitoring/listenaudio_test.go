package monitoring

import (
	"math/rand/v2"

	"github.com/dgraph-io/badger/v4"
)

// listenAudioEvery is how often a step of the replicas property also
// generates a listen-in request or a chunk of audio.
const listenAudioEvery = 5

// stepListenAudio generates a listen-in request (listen.go) or a chunk of
// audio (audio.go), mostly to an audio reference a session action made
// (audioref.go), under both rules of audioChunkCmd, for the replicas
// property (determinism_test.go). It draws from its own random source, so
// that the other commands stay as they were.
func (g *gen) stepListenAudio() {
	if g.lr == nil {
		g.lr = rand.New(rand.NewPCG(uint64(len(g.cmds)), 0x115e))
	}
	r := g.lr
	var open []Alarm
	if err := g.a.db.View(func(txn *badger.Txn) (err error) { open, err = OpenAlarms(txn); return err }); err != nil {
		g.t.Fatal(err)
	}
	alarm := "none"
	if len(open) > 0 && r.IntN(6) != 0 {
		alarm = open[r.IntN(len(open))].ID
	}
	if r.IntN(3) == 0 {
		actor := genOperators[r.IntN(len(genOperators))]
		if r.IntN(8) == 0 {
			actor = "device:d1"
		}
		seconds := []int{MinListenSeconds - 1, 30, 120, MaxListenSeconds, MaxListenSeconds + 1}[r.IntN(5)]
		g.add(CmdListenRequest, listenRequestCmd{Header: Header{At: g.now, Actor: actor, Node: "n2"}, AlarmID: alarm, Seconds: seconds})
		return
	}
	if len(g.refs) > 0 && r.IntN(4) != 0 {
		alarm = g.refs[r.IntN(len(g.refs))]
	}
	device := genDevices[r.IntN(len(genDevices))].ID
	if r.IntN(4) != 0 {
		// Mostly the device the reference or the alarm is of.
		if err := g.a.db.View(func(txn *badger.Txn) error {
			if ref, err := getAudioRef(txn, alarm); err == nil && ref != nil {
				device = ref.DeviceID
			} else if a, err := getAlarm(txn, alarm); err == nil && a.DeviceID != "" {
				device = a.DeviceID
			}
			return nil
		}); err != nil {
			g.t.Fatal(err)
		}
	}
	rate := []int{8000, 8000, 8000, 16000}[r.IntN(4)]
	req := AudioChunkRequest{AlarmID: alarm, DeviceID: device, Seq: uint64(r.IntN(6)), Codec: CodecPCM, SampleRate: rate, Channels: 1,
		Data: pcmTone(rate, 1, r.IntN(2)*80, 80)}
	g.add(CmdAudioChunk, audioChunkCmd{Header: Header{At: g.now, Actor: "device:" + device, Node: "n3"},
		AudioChunkRequest: req, Rules: r.IntN(2)})
}
